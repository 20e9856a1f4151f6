package memory

import (
	"context"

	"github.com/msgkit/messaging"
)

var _ messaging.AsyncPublisher = (*Client)(nil)

// PublishAsync implements messaging.AsyncPublisher. Appending to the
// in-process log cannot be pipelined: the message is published (as Publish
// does, with the same checks and errors) and done is called before
// PublishAsync returns, so nothing is ever pending and the window is
// irrelevant.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	messaging.PublishAsync(ctx, messaging.PublishFunc(c.Publish), topic, msg, done)
}

// Flush implements messaging.AsyncPublisher: nothing is ever pending, so it
// returns nil at once.
func (c *Client) Flush(ctx context.Context) error { return nil }
