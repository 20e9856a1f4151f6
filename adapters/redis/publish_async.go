package redis

import (
	"context"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// Asynchronous publishing: lanes and batch bound (see asyncpub.Batcher).
const (
	asyncLanes    = 4
	asyncMaxBatch = maxCoalesced
)

var _ messaging.AsyncPublisher = (*Client)(nil)

// PublishAsync implements messaging.AsyncPublisher with Redis pipelining:
// messages queue in a few lanes (a message's lane is chosen by its Key), and
// each lane sends everything queued in it, up to 1000 messages, as one
// pipeline of XADDs (one round trip) while the next pipeline fills; results
// are Publish's, message by message. At most 4096 messages are pending per
// Client (asyncpub.DefaultWindow). Messages with the same Key go through one
// lane, one pipeline after the other, and keep their order. A message's
// unavailable timeout (WithUnavailableTimeout) runs from when it was
// queued: while the server cannot be reached, each message fails with
// messaging.ErrUnavailable about that long after PublishAsync, however many
// batches were queued before it (one whose time ran out while it was queued
// fails without being sent), and Close returns about that long after the
// last PublishAsync. With WithCoalescing, a lane's batch waits for a
// coalescing goroutine, at its first attempt and at each retry: a message
// whose ctx has ended by the time a coalescing goroutine takes it fails
// with ctx's error without being sent (again), and once Close starts, so
// do the messages still waiting there, with messaging.ErrClosed.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	c.async.Get(c.newBatcher).PublishAsync(ctx, topic, msg, done)
}

// Flush implements messaging.AsyncPublisher.
func (c *Client) Flush(ctx context.Context) error { return c.async.Flush(ctx) }

func (c *Client) newBatcher() *asyncpub.Batcher {
	return asyncpub.NewBatcher(asyncLanes, asyncMaxBatch, func(topic string, m *messaging.Message) error {
		return c.preparePublish(topic, []*messaging.Message{m})
	}, func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		// A message's unavailable deadline runs from when it was queued.
		entered := asyncpub.Enqueued(ctx)
		var entry time.Time // unused when entered is not nil
		if entered == nil {
			entry = time.Now()
		}
		return c.publishChecked(ctx, entry, entered, topic, msgs)
	}).StampEnqueue()
}
