package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/msgkit/messaging"
)

var _ messaging.AsyncPublisher = (*Client)(nil)

// PublishAsync implements messaging.AsyncPublisher. Appending to the
// in-process log cannot be pipelined: the message is published (as Publish
// does, with the same checks and errors) and done is called before
// PublishAsync returns, so the window is irrelevant.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	c.async.begin()
	defer c.async.end() // also when done panics
	messaging.PublishAsync(ctx, messaging.PublishFunc(c.Publish), topic, msg, done)
}

// Flush implements messaging.AsyncPublisher: it waits until the
// PublishAsync calls running on other goroutines (their callbacks) have
// returned, or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	idle := c.async.idle()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory: flush: %w", ctx.Err())
	}
}

// asyncCalls counts the PublishAsync calls in progress. The zero value
// has none.
type asyncCalls struct {
	mu      sync.Mutex
	n       int
	waiting chan struct{} // closed when n drops to 0; made by a Flush that waits
}

func (a *asyncCalls) begin() {
	a.mu.Lock()
	a.n++
	a.mu.Unlock()
}

func (a *asyncCalls) end() {
	a.mu.Lock()
	if a.n--; a.n == 0 && a.waiting != nil {
		close(a.waiting)
		a.waiting = nil
	}
	a.mu.Unlock()
}

// idle returns a channel closed once no call is in progress, or nil when
// none is now.
func (a *asyncCalls) idle() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == 0 {
		return nil
	}
	if a.waiting == nil {
		a.waiting = make(chan struct{})
	}
	return a.waiting
}
