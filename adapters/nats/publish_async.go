package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
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
// when the connection is flushed. PublishAsync publishes the message on the
// connection at once, in the caller's goroutine, as nats.go's Publish does
// (a bare message as its payload alone), and adds it to a list of messages
// sent and not yet flushed. A flusher goroutine takes that list, flushes
// the connection once (a round trip to the server) and ends every message
// of it with the outcome, while the messages sent meanwhile make the next
// list: nil once the server has them, or the flush's error as Publish
// would report it. All messages share one order on the wire, that of the
// calls. At most 4,096 messages are pending (sent, not yet ended). While
// the connection is down nats.go keeps the messages in its reconnect
// buffer, and the flusher waits for the connection up to the unavailable
// timeout, then fails its list with messaging.ErrUnavailable (a message
// failed so may still be sent after the reconnect); a message that nats.go
// refuses (its reconnect buffer is full, the connection is closed) fails at
// once. As Publish in core mode, it sets no ID nor Time.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	if c.cfg.mode == ModeCore {
		c.publishAsyncCore(ctx, topic, msg, done)
		return
	}
	if err := asyncpub.Check(ctx, c.asyncJS, topic, msg, c.prepareOne); err != nil {
		asyncpub.Fail(done, msg, err)
		return
	}
	// The message is admitted: every path below ends it exactly once.
	a := &asyncMsg{ctx: ctx, topic: topic, msg: msg, done: done}
	nm, err := c.encodeJS(topic, msg, c.maxPayload())
	if err != nil {
		c.asyncJS.End(done, msg, fmt.Errorf("nats: publish to %s: %w", topic, err))
		return
	}
	a.nm = nm
	if c.park(a) {
		return
	}
	c.lookUpAndSend(a)
}

// asyncMsg is a PublishAsync message in JetStream mode.
type asyncMsg struct {
	ctx    context.Context
	topic  string
	msg    *messaging.Message
	done   messaging.PublishCallback
	nm     *natsgo.Msg
	resent bool // sent again after its stream had gone
}

// parking holds the PublishAsync messages given while the connection is
// down, in order, so that the caller is not held up per message: one
// goroutine waits for the connection up to the unavailable timeout, then
// sends them (or fails them with messaging.ErrUnavailable), and the
// messages parked meanwhile after them, with a new timeout, until none is
// left. Messages given while some are parked are parked too, so they keep
// their order. Each holds its slot of the window while parked. When Close
// begins, the parked messages fail with messaging.ErrClosed at once.
type parking struct {
	busy    atomic.Bool // messages are parked or being handed on: park
	mu      sync.Mutex
	msgs    []*asyncMsg
	waiting bool // a goroutine serves msgs
}

// park parks a when the connection is down or messages are parked, and
// reports whether it did.
func (c *Client) park(a *asyncMsg) bool {
	if !c.parking.busy.Load() && (c.nc.IsConnected() || c.closed.Load()) {
		return false
	}
	p := &c.parking
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.waiting && (c.nc.IsConnected() || c.closed.Load()) {
		return false
	}
	p.msgs = append(p.msgs, a)
	if !p.waiting {
		p.waiting = true
		p.busy.Store(true)
		go c.unpark()
	}
	return true
}

// unpark serves the parked messages (see parking).
func (c *Client) unpark() {
	p := &c.parking
	for {
		err := c.awaitParked()
		p.mu.Lock()
		msgs := p.msgs
		p.msgs = nil
		if len(msgs) == 0 {
			p.waiting = false
			p.busy.Store(false)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, a := range msgs {
			switch {
			case a.ctx.Err() != nil:
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: waiting for the connection: %w", a.topic, a.ctx.Err()))
			case c.asyncJS.Closed():
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: waiting for the connection when the client closed: %w", a.topic, messaging.ErrClosed))
			case err != nil:
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: %w", a.topic, err))
			default:
				c.lookUpAndSend(a)
			}
		}
	}
}

// awaitParked waits for the connection for parked messages, up to the
// unavailable timeout or until Close begins.
func (c *Client) awaitParked() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.asyncJS.Closing():
			cancel()
		case <-ctx.Done():
		}
	}()
	return c.awaitConnectionUntil(ctx, time.Now().Add(c.cfg.unavailable))
}

// lookUpAndSend looks up (or creates) the topic's stream and sends a.
func (c *Client) lookUpAndSend(a *asyncMsg) {
	if _, err := c.stream(a.ctx, a.topic); err != nil {
		c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: %w", a.topic, err))
		return
	}
	c.publishMsgAsync(a)
}

// publishMsgAsync publishes a; its acknowledgement resolves it (resolve).
func (c *Client) publishMsgAsync(a *asyncMsg) {
	nm := a.nm
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
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: %w", a.topic, err))
				return
			}
			c.publishMsgAsync(a)
		}()
		return
	}
	if err != nil {
		err = fmt.Errorf("nats: publish to %s: %w", a.topic, c.wrapConnErr(err))
	}
	c.asyncJS.End(a.done, a.msg, err)
}

// Flush implements messaging.AsyncPublisher.
func (c *Client) Flush(ctx context.Context) error {
	if c.cfg.mode == ModeCore {
		return c.flushCoreAsync(ctx)
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
		c.closeCoreAsync()
		return
	}
	c.asyncJS.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.publishTimeout+time.Second)
	defer cancel()
	if c.asyncJS.Flush(ctx) == nil {
		return
	}
	for _, s := range c.pending.takeAsync() {
		c.asyncJS.End(s.a.done, s.a.msg, fmt.Errorf("nats: publish to %s: no acknowledgement before Close: %w", s.a.topic, messaging.ErrClosed))
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

// prepareOne makes the checks Publish makes before encoding (JetStream
// mode: and sets the ID and Time unless WithCallerIDs).
func (c *Client) prepareOne(topic string, m *messaging.Message) error {
	return c.preparePublish(topic, []*messaging.Message{m}, c.maxPayload())
}
