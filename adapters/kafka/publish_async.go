package kafka

import (
	"context"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// Asynchronous publishing: lanes and batch bound (see asyncpub.Batcher).
const (
	asyncLanes    = 4
	asyncMaxBatch = 1000
)

var _ messaging.AsyncPublisher = (*Client)(nil)

// PublishAsync implements messaging.AsyncPublisher with the producer's
// queue: messages wait in a few lanes (a message's lane is chosen by its
// Key), and each lane hands everything queued in it, up to 1000 messages,
// to the producer at once, which writes them in one produce request per
// partition (sharing requests with concurrent Publish calls) while the next
// batch fills; results are Publish's, message by message. At most 4096
// messages are pending per Client (asyncpub.DefaultWindow). Messages with
// the same Key go through one lane to one partition, one batch after the
// other, and keep their order. A message whose ctx ends while it waits,
// in its lane or in the producer behind another request to its partition,
// fails with ctx's error without being sent; once Close starts, so do the
// messages still waiting there, with messaging.ErrClosed. With WithWriter,
// the batches go through the given kafka-go Writer instead.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	c.async.Get(c.newBatcher).PublishAsync(ctx, topic, msg, done)
}

// Flush implements messaging.AsyncPublisher.
func (c *Client) Flush(ctx context.Context) error { return c.async.Flush(ctx) }

func (c *Client) newBatcher() *asyncpub.Batcher {
	return asyncpub.NewBatcher(asyncLanes, asyncMaxBatch, c.validateOne, func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		// A message's unavailable deadline runs from when it was queued.
		return c.publishChecked(ctx, time.Now(), asyncpub.Enqueued(ctx), topic, msgs)
	}).StampEnqueue()
}

// validateOne makes the checks Publish makes before sending anything. (The
// record encoding's own check, the reserved "msgkit-" header prefix, is
// ValidateHeader's too.)
func (c *Client) validateOne(topic string, m *messaging.Message) error {
	return c.preparePublish(topic, []*messaging.Message{m})
}
