package rabbitmq

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// Asynchronous publishing: lanes and batch bound (see asyncpub.Batcher).
const (
	asyncLanes    = 4
	asyncMaxBatch = 1024
)

var _ messaging.AsyncPublisher = (*Client)(nil)

// PublishAsync implements messaging.AsyncPublisher with publisher confirms:
// messages queue in a few lanes (a message's lane is chosen by its Key), and
// each lane publishes everything queued in it, up to 1024 messages, on one
// confirm channel, all in flight at once, while the next batch fills;
// results are Publish's, message by message (ErrUnroutable, ErrNacked,
// resending after a lost connection). At most 4096 messages are pending per
// Client (asyncpub.DefaultWindow), and at most 4 batches (channels) are in
// flight. Messages with the same Key go through one lane, one batch after
// the other, and keep their order. A message's ctx is honoured until it is
// written: one whose ctx ends while its batch waits (for a connection, a
// publish channel, the declaration of its topic, the end of a resource
// alarm's block, or before a resend on a new connection) fails with ctx's
// error, unsent, and the rest of its batch is sent. Close ends these waits
// at once: every message not yet written then (queued, or its batch waiting
// so) fails with messaging.ErrClosed. A message's unavailable timeout runs
// from when it was queued (from the first message of its batch): the time it
// waited behind batches held by an unreachable broker or a resource alarm
// counts, so it fails with messaging.ErrUnavailable within about
// unavailable_timeout of its PublishAsync (at once when that has passed
// while it waited), and Flush and Close (for the messages written, awaiting
// their confirms) return within about that of the last one.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	c.async.Get(c.newBatcher).PublishAsync(ctx, topic, msg, done)
}

// Flush implements messaging.AsyncPublisher.
func (c *Client) Flush(ctx context.Context) error { return c.async.Flush(ctx) }

func (c *Client) newBatcher() *asyncpub.Batcher {
	return asyncpub.NewBatcher(asyncLanes, asyncMaxBatch, c.validateOne, func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		// The batch's unavailable timeout runs from when its first
		// message was queued (Enqueued never decreases).
		begin := time.Now()
		if at := asyncpub.Enqueued(ctx); len(at) > 0 {
			begin = at[0]
		}
		return c.publish(ctx, begin, topic, msgs, asyncpub.Unwanted(ctx), asyncpub.Closing(ctx))
	}).StampEnqueue()
}

// validateOne makes the checks Publish makes before sending anything.
func (c *Client) validateOne(topic string, m *messaging.Message) error {
	if err := driver.PreparePublish(topic, []*messaging.Message{m}, c.cfg.maxMessageSize); err != nil {
		return err
	}
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("rabbitmq: publish: topic: %w", err)
	}
	p, err := publishing(m)
	if err == nil {
		err = checkFrame(p, c.frameMax)
	}
	if err != nil {
		return fmt.Errorf("rabbitmq: publish to %s: %w", topic, err)
	}
	return nil
}
