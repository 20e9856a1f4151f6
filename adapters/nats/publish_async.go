package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
	"github.com/msgkit/messaging/internal/prepare"
)

// Core mode's asynchronous publishing: lanes and batch bound (see
// asyncpub.Batcher).
const (
	asyncCoreLanes    = 1
	asyncCoreMaxBatch = 1024
)

var _ messaging.AsyncPublisher = (*Client)(nil)

// PublishAsync implements messaging.AsyncPublisher.
//
// JetStream mode: the message is published with JetStream's asynchronous
// publish (PublishMsgAsync, Nats-Msg-Id = ID) and done is called from the
// acknowledgement, as for Publish: nil once the stream stored it, an error
// wrapping messaging.ErrDuplicate for a message the stream dropped as a
// duplicate, messaging.ErrUnavailable for one in flight when the
// connection dropped, the publish timeout's error when no acknowledgement
// came. Messages in flight share the Client's window with Publish
// (WithMaxInFlight, default 4096). A message whose stream was deleted
// meanwhile is sent once more after the stream is created again.
//
// Core mode: core NATS has no acknowledgement; a message's result is known
// when the connection is flushed. Messages queue and go out in batches of up
// to 1024, each a run of publishes and one flush (a round trip to the
// server), while the next batch fills; done reports the batch's outcome as
// Publish would. One lane keeps the order of all messages.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	if c.cfg.mode == ModeCore {
		c.async.Get(c.newBatcher).PublishAsync(ctx, topic, msg, done)
		return
	}
	if err := asyncpub.Check(ctx, c.asyncJS, topic, msg, c.prepareOne); err != nil {
		asyncpub.Fail(done, msg, err)
		return
	}
	// The message is admitted: every path below ends it exactly once.
	a := &asyncMsg{topic: topic, msg: msg, done: done}
	nm, err := encode(topic, msg, c.maxPayload(), c.maxHeader())
	if err == nil {
		err = c.awaitConnectionAsync(ctx)
	}
	if err == nil {
		_, err = c.stream(ctx, topic)
	}
	if err != nil {
		c.asyncJS.End(done, msg, fmt.Errorf("publish to %s: %w", topic, err))
		return
	}
	c.sendAsyncOne(nm, a)
}

// awaitConnectionAsync is awaitConnection for PublishAsync: every message
// given while the connection is down waits for it until the same deadline,
// the unavailable timeout after the first one began waiting, and fails at
// once after it, so that a goroutine publishing through an outage is held
// up for the timeout once, not once per message.
func (c *Client) awaitConnectionAsync(ctx context.Context) error {
	if c.nc.IsConnected() || c.closed.Load() {
		return nil
	}
	// An outage is told apart from the last one by the reconnect count.
	reconnects := c.nc.Stats().Reconnects
	o := c.outage.Load()
	if o == nil || o.reconnects != reconnects {
		c.outage.CompareAndSwap(o, &outage{reconnects: reconnects, end: time.Now().Add(c.cfg.unavailable)})
		o = c.outage.Load()
	}
	return c.awaitConnectionUntil(ctx, o.end)
}

// outage is a loss of the connection as PublishAsync waits for it: the
// reconnects counted before it, and when waiting for it ends.
type outage struct {
	reconnects uint64
	end        time.Time
}

// asyncMsg is a PublishAsync message in flight in JetStream mode.
type asyncMsg struct {
	topic  string
	msg    *messaging.Message
	done   messaging.PublishCallback
	resent bool // sent again after its stream had gone
	nm     *natsgo.Msg
}

// sendAsyncOne publishes nm; its acknowledgement resolves a (resolve).
func (c *Client) sendAsyncOne(nm *natsgo.Msg, a *asyncMsg) {
	a.nm = nm
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := pubSlot{a: a}
	c.pending.store(nm, s)
	if _, err := c.js.PublishMsgAsync(nm); err != nil {
		if s, ok := c.pending.take(nm); ok {
			c.resolve(s, err)
		}
	}
}

// resolveAsync reports the outcome of a PublishAsync message (called by
// resolve, once per sending). A message that found no stream (deleted since
// it was looked up) is sent once more, from another goroutine, after the
// stream is created again.
func (c *Client) resolveAsync(a *asyncMsg, err error) {
	if errors.Is(err, jetstream.ErrNoStreamResponse) && !a.resent && !c.asyncJS.Closed() {
		a.resent = true
		go func() {
			c.streams.Delete(a.topic)
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.unavailable)
			defer cancel()
			if _, err := c.stream(ctx, a.topic); err != nil {
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("publish to %s: %w", a.topic, err))
				return
			}
			c.sendAsyncOne(a.nm, a)
		}()
		return
	}
	if err != nil {
		err = fmt.Errorf("publish to %s: %w", a.topic, c.wrapConnErr(err))
	}
	c.asyncJS.End(a.done, a.msg, err)
}

// Flush implements messaging.AsyncPublisher.
func (c *Client) Flush(ctx context.Context) error {
	if c.cfg.mode == ModeCore {
		return c.async.Flush(ctx)
	}
	return c.asyncJS.Flush(ctx)
}

// closeAsync is Close's first step: it refuses new PublishAsync calls and
// waits for the results of the messages in flight (in JetStream mode up to
// the publish timeout, after which the JetStream context reports them
// failed anyway; messages still unresolved then, on a connection closed
// under the Client, fail with messaging.ErrClosed).
func (c *Client) closeAsync() {
	if c.cfg.mode == ModeCore {
		c.async.Close()
		return
	}
	c.asyncJS.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.publishTimeout+time.Second)
	defer cancel()
	if c.asyncJS.Flush(ctx) == nil {
		return
	}
	for _, s := range c.pending.takeAsync() {
		c.asyncJS.End(s.a.done, s.a.msg, fmt.Errorf("publish to %s: no acknowledgement before Close: %w", s.a.topic, messaging.ErrClosed))
	}
}

// takeAsync removes and returns the PublishAsync messages in flight.
func (f *inflight) takeAsync() []pubSlot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pubSlot
	for nm, s := range f.m {
		if s.a != nil {
			out = append(out, s)
			delete(f.m, nm)
		}
	}
	return out
}

// prepareOne makes the checks Publish makes before encoding.
func (c *Client) prepareOne(topic string, m *messaging.Message) error {
	return prepare.Publish(topic, []*messaging.Message{m}, int(c.maxPayload())-sizeSlack)
}

// validateOne makes every check Publish makes before sending (core mode).
func (c *Client) validateOne(topic string, m *messaging.Message) error {
	if err := c.prepareOne(topic, m); err != nil {
		return err
	}
	if _, err := encode(topic, m, c.maxPayload(), c.maxHeader()); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

func (c *Client) newBatcher() *asyncpub.Batcher {
	return asyncpub.NewBatcher(asyncCoreLanes, asyncCoreMaxBatch, c.validateOne, c.Publish)
}
