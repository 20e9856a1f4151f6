package nats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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
// duplicate, the publish timeout's error when no acknowledgement came.
//
// Each message has a deadline: the unavailable timeout after PublishAsync
// took it (once it had its slot of the window, below), or after the
// server's last answer on the connection (an acknowledgement, a stream
// lookup's answer, the handshake of a reconnect) if that is later. A
// message that the server has not answered fails with
// messaging.ErrUnavailable at its deadline, whatever it waits for: the
// connection (given while it is down, or in flight when it dropped), the
// acknowledgement of a server that answers nothing while the connection
// stays up (a slow server's answers move the deadline on: its messages
// wait, up to the publish timeout), the lookup or creation of its stream
// (the first message to a topic whose stream the client has not looked up
// yet waits for it, in the caller's goroutine while the connection is
// up), or room in nats.go's window (below). A message that reached
// nats.go's reconnect buffer as the connection dropped fails so once the
// connection has been down for the unavailable timeout. A message in
// flight when the connection dropped is sent again once it is back,
// within its deadline, if it has an ID and no Key (the stream drops the
// copy it may have stored: its duplicate window must outlast the
// unavailable timeout; not with WithExistingStreams); one with a Key fails
// with messaging.ErrUnavailable instead, since messages sent after it may
// have reached the stream first (from nats.go's reconnect buffer).
//
// Messages in flight share the Client's window with Publish
// (WithMaxInFlight, default 4096): PublishAsync waits, in the caller's
// goroutine, until the window has room or ctx ends. nats.go counts its
// unacknowledged publishes too (up to max_in_flight+1), and keeps there a
// message the adapter failed as unavailable on a silent server until the
// publish timeout: a message that finds nats.go's count full waits for
// room, in the caller's goroutine, until its deadline, then fails unsent
// with messaging.ErrUnavailable (or at once with ctx's error when ctx
// ends, with messaging.ErrClosed when Close begins), as it would have
// failed had it been sent; it does not fail at once with nats.go's
// "stalled" error.
//
// A message whose stream was deleted meanwhile is sent once more after the
// stream is created again, in the order of the PublishAsync calls: the
// messages given after it wait until every message sent before them has
// its answer, and those that found no stream are sent again first, as
// Publish does for the messages of one call.
//
// Core mode: core NATS has no acknowledgement; a message's result is known
// when the connection is flushed. PublishAsync publishes the message on the
// connection at once, in the caller's goroutine, as nats.go's Publish does
// (a bare message as its payload alone), and adds it to a list of messages
// sent and not yet flushed. A flusher goroutine takes that list, flushes
// the connection once (a round trip to the server) and ends every message
// of it with the outcome, while the messages sent meanwhile make the next
// list: nil once the server has them, or the flush's error as Publish
// would report it. While the server answers nothing (the connection up),
// each message fails with messaging.ErrUnavailable the unavailable timeout
// after its call, never sooner than that after the server's last answer
// on the connection, and the flush goes on for the others. All messages share one order on the wire, that of the
// calls. At most 4,096 messages are pending (sent, not yet ended). While
// the connection is down nats.go keeps the messages in its reconnect
// buffer, and each message waits for the connection up to the unavailable
// timeout after its call (or after the loss, for a message sent before the
// flusher noticed it), then fails with messaging.ErrUnavailable (a message
// failed so may still be sent after the reconnect); a message that nats.go
// refuses (its reconnect buffer is full, the connection is closed) fails at
// once. As Publish in core mode, it sets no ID nor Time.
//
// Core mode without a callback (done nil, fire and forget): nobody takes
// the message's result, so the adapter does no per-message work beyond the
// checks Publish makes and nats.go's Publish. The message goes on the wire
// as with a callback, in the same order, but is not in the list and does
// not count in the window: nats.go's write buffer holds the caller back,
// and while the connection is down its reconnect buffer (a message it
// refuses is dropped). Flush and Close flush the connection once for all
// such messages sent before them: Flush returns once the server has them,
// or, while the connection is down, once the unavailable timeout counted
// from the first Flush after them has passed (they may still be sent after
// the reconnect), or when ctx ends. Such a call keeps nothing of the
// message once it returns: as with nats.go's Publish, the caller may reuse
// the message, and its payload's bytes, for the next call.
func (c *Client) PublishAsync(ctx context.Context, topic string, msg *messaging.Message, done messaging.PublishCallback) {
	if c.cfg.mode == ModeCore {
		c.publishAsyncCore(ctx, topic, msg, done)
		return
	}
	if !asyncpub.Check(ctx, c.asyncJS, topic, msg, c.prepareOne, done) {
		return
	}
	// The message is admitted: every path below ends it exactly once.
	a := &asyncMsg{ctx: ctx, topic: topic, msg: msg, done: done, seq: c.parking.seq.Add(1), entered: time.Now()}
	nm, err := c.encodeJS(topic, msg, c.maxPayload())
	if err != nil {
		c.asyncJS.End(done, msg, fmt.Errorf("nats: publish to %s: %w", topic, err))
		return
	}
	a.nm = nm
	if c.park(a) {
		return
	}
	if !c.lookUpAndSend(a) {
		c.requeue([]*asyncMsg{a})
	}
}

// asyncMsg is a PublishAsync message in JetStream mode.
type asyncMsg struct {
	ctx     context.Context
	topic   string
	msg     *messaging.Message
	done    messaging.PublishCallback
	nm      *natsgo.Msg
	seq     uint64    // the order of the PublishAsync calls
	resent  bool      // sent again after its stream had gone
	retried bool      // sent again after the connection dropped
	entered time.Time // when PublishAsync took it: its deadline runs from then (see Client.deadline)
}

// parking holds the PublishAsync messages given while the connection is
// down, so that the caller is not held up per message: one goroutine waits
// for the connection, then sends them, and the messages parked meanwhile
// after them, until none is left; each message waits up to its deadline
// (see PublishAsync), then fails with messaging.ErrUnavailable.
// Messages given while some are parked are parked too, so they keep their
// order. Each holds its slot of the window while parked. When Close begins,
// the parked messages fail with messaging.ErrClosed at once.
//
// A message that found no stream (deleted since it was looked up) is parked
// too, to be sent again (resend), waiting for the connection up to its
// deadline (the server's answer moved it on): the goroutine, once
// connected, first waits until no message is in flight (each sent before
// it has its answer, and those that found no stream are parked as well). The parked messages are
// sent in the order of their PublishAsync calls (seq).
type parking struct {
	busy    atomic.Bool // messages are parked or being handed on: park
	seq     atomic.Uint64
	flight  flightCount // messages being sent or awaiting their answer
	mu      sync.Mutex
	msgs    []*asyncMsg // in the order they were parked
	resends int         // how many of msgs are to be sent again (resent)
	waiting bool        // a goroutine serves msgs
}

// park parks a when the connection is down or messages are parked, and
// reports whether it did. When it did not, a counts in flight until it is
// resolved (endFlight, or resend).
func (c *Client) park(a *asyncMsg) bool {
	p := &c.parking
	p.flight.add() // before busy is read: unpark waits for a (see flightCount)
	if !p.busy.Load() && (c.nc.IsConnected() || c.closed.Load()) {
		return false
	}
	p.mu.Lock()
	if !p.waiting && (c.nc.IsConnected() || c.closed.Load()) {
		p.mu.Unlock()
		return false
	}
	c.parkLocked(a)
	p.mu.Unlock()
	p.flight.done()
	return true
}

// parkLocked adds a to the parked messages, with c.parking.mu held, and
// starts their goroutine when none serves them.
func (c *Client) parkLocked(a *asyncMsg) {
	p := &c.parking
	p.msgs = append(p.msgs, a)
	if a.resent {
		p.resends++
	}
	c.serveParkedLocked()
}

// serveParkedLocked starts unpark unless it runs; p.mu is held.
func (c *Client) serveParkedLocked() {
	p := &c.parking
	if !p.waiting {
		p.waiting = true
		p.busy.Store(true)
		go c.unpark()
	}
}

// resend parks a, in flight, to be sent again once its stream is created
// again (see parking).
func (c *Client) resend(a *asyncMsg) {
	a.resent = true
	c.parkInFlight(a)
}

// repark parks again a message that was in flight when the connection
// dropped, up to its deadline (from its call, not from the loss: a server
// silent before the loss does not give it another timeout).
func (c *Client) repark(a *asyncMsg) {
	a.retried = true
	c.parkInFlight(a)
}

// parkInFlight parks a, which counts in flight (resend, repark).
func (c *Client) parkInFlight(a *asyncMsg) {
	p := &c.parking
	p.mu.Lock()
	c.parkLocked(a)
	p.mu.Unlock()
	p.flight.done()
}

// requeue parks msgs again, before the messages parked since, when the
// loss of the connection cut the lookup of the first one's stream short
// (msgs[0] counts in flight); each waits up to its deadline.
func (c *Client) requeue(msgs []*asyncMsg) {
	p := &c.parking
	p.mu.Lock()
	for _, a := range msgs {
		if a.resent {
			p.resends++
		}
	}
	p.msgs = append(slices.Clip(msgs), p.msgs...)
	c.serveParkedLocked()
	p.mu.Unlock()
	p.flight.done()
}

// retryable reports whether a message in flight when the connection dropped
// may be sent again: the stream drops it if it stored it already (it has an
// ID, and the stream's duplicate window outlasts the unavailable timeout),
// and it has no Key, so no order is promised. A message with a Key is not:
// messages sent after it may have gone out from nats.go's reconnect buffer
// first, and sending it again would put it after them.
func (c *Client) retryable(a *asyncMsg) bool {
	window := c.cfg.duplicates
	if window == 0 {
		window = serverDuplicateWindow
	}
	return a.msg.ID != "" && a.msg.Key == "" && !c.cfg.bindStreams && window > c.cfg.unavailable
}

// serverDuplicateWindow is the duplicate window the server gives a stream
// created without one (WithDuplicateWindow unset).
const serverDuplicateWindow = 2 * time.Minute

// unpark serves the parked messages (see parking): while the connection is
// down it fails those whose deadline (Client.deadline from their entry)
// has passed and waits for the next deadline; once the connection is up (or the client closing) it
// hands them all on, in the order of their calls, after the messages in
// flight when some are to be sent again.
func (c *Client) unpark() {
	p := &c.parking
	// RECONNECTING ends a wait for the messages in flight: the parked
	// messages' deadlines run again.
	ch := c.nc.StatusChanged(natsgo.CONNECTED, natsgo.RECONNECTING, natsgo.CLOSED)
	defer c.nc.RemoveStatusListener(ch)
	var w wakeup
	defer w.stop()
	for {
		var err error
		up := true
		switch {
		case c.asyncJS.Closed(), c.closed.Load(), c.nc.IsConnected():
		case c.nc.IsClosed():
			err = fmt.Errorf("%w: %w", messaging.ErrClosed, natsgo.ErrConnectionClosed)
		default:
			up = false
			err = fmt.Errorf("%w: not connected within %v (%v)", messaging.ErrUnavailable, c.cfg.unavailable, c.nc.Status())
		}
		p.mu.Lock()
		if err == nil && p.resends > 0 && !p.flight.idle() && !c.asyncJS.Closed() {
			p.mu.Unlock()
			p.flight.wait(ch, c.asyncJS.Closing())
			continue
		}
		var msgs []*asyncMsg // handed on: all once up, else those past their deadline
		var next time.Time   // the earliest deadline of those left
		resends := 0
		if up {
			msgs, p.msgs = p.msgs, nil
			resends, p.resends = p.resends, 0
		} else {
			now := time.Now()
			left := p.msgs[:0]
			for _, a := range p.msgs {
				if dl := c.deadline(a.entered); now.Before(dl) {
					left = append(left, a)
					if next.IsZero() || dl.Before(next) {
						next = dl
					}
					continue
				}
				msgs = append(msgs, a)
				if a.resent {
					p.resends--
				}
			}
			clear(p.msgs[len(left):])
			p.msgs = left
		}
		if len(p.msgs) == 0 {
			p.msgs = nil
			if len(msgs) == 0 {
				p.waiting = false
				p.busy.Store(false)
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		if up {
			// Parked in call order but for those sent again.
			slices.SortStableFunc(msgs, func(a, b *asyncMsg) int { return cmp.Compare(a.seq, b.seq) })
		}
		if resends > 0 {
			for _, a := range msgs {
				if a.resent {
					c.streams.Delete(a.topic) // looked up (created) again
				}
			}
		}
	handOn:
		for i, a := range msgs {
			stage := "waiting for the connection"
			if a.resent {
				stage = "waiting to be sent again after its stream was deleted"
			}
			switch {
			case a.ctx.Err() != nil:
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: %s: %w", a.topic, stage, a.ctx.Err()))
			case c.asyncJS.Closed():
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: %s when the client closed: %w", a.topic, stage, messaging.ErrClosed))
			case err != nil:
				c.asyncJS.End(a.done, a.msg, fmt.Errorf("nats: publish to %s: %s: %w", a.topic, stage, err))
			default:
				p.flight.add()
				if !c.lookUpAndSend(a) {
					// Lost again: a and those after it keep their place.
					c.requeue(msgs[i:])
					break handOn
				}
			}
		}
		if !next.IsZero() {
			w.wait(next, ch, c.asyncJS.Closing()) // Close: fail the rest at once
		}
	}
}

// flightCount counts the PublishAsync messages in flight (being sent, or
// awaiting their answer). A sender adds its message before it reads
// parking.busy, and unpark sets busy before it waits for the count to be 0,
// so either the sender parks its message or unpark waits for it.
type flightCount struct {
	n       atomic.Int64
	waiting atomic.Bool // wait is waiting: done signals zero
	mu      sync.Mutex
	zero    chan struct{} // made by wait, closed by done at 0
}

func (f *flightCount) add()       { f.n.Add(1) }
func (f *flightCount) idle() bool { return f.n.Load() == 0 }

func (f *flightCount) done() {
	if f.n.Add(-1) == 0 && f.waiting.Load() {
		f.mu.Lock()
		if f.zero != nil {
			close(f.zero)
			f.zero = nil
		}
		f.mu.Unlock()
	}
}

// wait returns once the count is 0, a status change comes on ch or stop is
// closed. One goroutine (unpark) waits at a time.
func (f *flightCount) wait(ch <-chan natsgo.Status, stop <-chan struct{}) {
	f.mu.Lock()
	f.waiting.Store(true)
	if f.n.Load() == 0 {
		f.waiting.Store(false)
		f.mu.Unlock()
		return
	}
	zero := make(chan struct{})
	f.zero = zero
	f.mu.Unlock()
	select {
	case <-zero:
	case <-ch:
	case <-stop:
	}
	f.mu.Lock()
	f.zero = nil
	f.waiting.Store(false)
	f.mu.Unlock()
}

// lookUpAndSend looks up (or creates) the topic's stream and sends a, which
// counts in flight. It reports false, having done nothing with a, when the
// connection was lost before the stream was known: the caller parks a again
// (requeue).
func (c *Client) lookUpAndSend(a *asyncMsg) bool {
	if _, ok := c.streams.Load(a.topic); !ok {
		lost, err := c.lookUp(a.ctx, a.topic)
		if lost && a.ctx.Err() == nil && !c.asyncJS.Closed() {
			return false
		}
		if err != nil {
			c.endFlight(a, fmt.Errorf("nats: publish to %s: %w", a.topic, err))
			return true
		}
	}
	c.publishMsgAsync(a)
	return true
}

// lookUp is c.lookUpStream for a PublishAsync message (a silent server
// fails it unavailable_timeout after it began); a loss of the connection
// cuts it short (its answer would never come) and is reported as lost.
func (c *Client) lookUp(ctx context.Context, topic string) (lost bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := c.nc.StatusChanged(natsgo.RECONNECTING, natsgo.CLOSED)
	var cut atomic.Bool
	go func() {
		if _, ok := <-ch; ok {
			cut.Store(true)
			cancel()
		}
	}()
	defer c.nc.RemoveStatusListener(ch) // before cancel: ends the goroutine
	if !c.nc.IsConnected() {
		return true, nil
	}
	_, err = c.lookUpStream(ctx, topic)
	return err != nil && (cut.Load() || !c.nc.IsConnected()), err
}

// endFlight reports the result of a, in flight.
func (c *Client) endFlight(a *asyncMsg, err error) {
	c.parking.flight.done()
	c.asyncJS.End(a.done, a.msg, err)
}

// publishMsgAsync publishes a; its acknowledgement resolves it (resolve).
func (c *Client) publishMsgAsync(a *asyncMsg) {
	nm := a.nm
	opts, err := c.roomFor(a.ctx, a.entered, c.asyncJS.Closing())
	if err != nil {
		c.endFlight(a, fmt.Errorf("nats: publish to %s: %w", a.topic, err))
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := pubSlot{a: a}
	c.pending.store(nm, s)
	if _, err := c.js.PublishMsgAsync(nm, opts...); err != nil {
		if s, ok := c.pending.take(nm); ok {
			c.resolve(s, err)
		}
	}
}

// resolveAsync reports the outcome of a PublishAsync message (called by
// resolve, once per sending). A message that found no stream (deleted since
// it was looked up) is sent once more after the stream is created again,
// in order (resend). A message in flight when the connection dropped is
// parked again (repark) when that is safe (retryable): the stream drops the
// copy it may have stored already, and the duplicate's acknowledgement is
// then the message's success.
func (c *Client) resolveAsync(a *asyncMsg, err error) {
	if err != nil && !c.asyncJS.Closed() && c.retryable(a) {
		switch {
		case errors.Is(err, natsgo.ErrDisconnected), lostWrite(err):
			c.repark(a)
			return
		case a.retried && errors.Is(err, messaging.ErrDuplicate):
			err = nil
		}
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) && !a.resent && !c.asyncJS.Closed() {
		c.resend(a)
		return
	}
	if err != nil {
		err = fmt.Errorf("nats: publish to %s: %w", a.topic, c.wrapConnErr(err))
	}
	c.endFlight(a, err)
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
// failed anyway, or while the connection is down up to the unavailable
// timeout from the loss (watchLoss); messages still unresolved then, on a
// connection closed under the Client, fail with messaging.ErrClosed).
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
	left := c.pending.takeAll(true)
	if len(left) > 0 {
		c.leftBehind()
	}
	for _, s := range left {
		c.endFlight(s.a, fmt.Errorf("nats: publish to %s: no acknowledgement before Close: %w", s.a.topic, messaging.ErrClosed))
	}
}

// takeAll removes and returns the messages in flight: all of them, or only
// the PublishAsync messages.
func (f *inflight) takeAll(asyncOnly bool) []pubSlot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pubSlot
	for nm, s := range f.m {
		if s.a != nil || !asyncOnly {
			out = append(out, s)
			delete(f.m, nm)
		}
	}
	return out
}

// watchLoss bounds the wait of the publishes nats.go holds while the
// connection is down, and of those a silent server took. nats.go fails
// those awaiting their acknowledgement when the connection drops, but not
// those sent just after (into its reconnect buffer), which would wait for
// the publish timeout: once the connection has been down for the
// unavailable timeout, every publish still awaiting its acknowledgement
// fails with messaging.ErrUnavailable, and so again every unavailable
// timeout while it stays down. While the connection is up, a publish
// awaiting its acknowledgement past its deadline (see Client.deadline: the
// server answered nothing for the unavailable timeout since it was sent)
// fails with c.errSilent (expireSilent). It runs until Close (or the
// connection closes); one goroutine per client in JetStream mode.
func (c *Client) watchLoss() {
	defer close(c.lossDone)
	t := time.NewTimer(c.cfg.unavailable)
	defer t.Stop()
	var down <-chan time.Time // t's channel while the connection is down
	silent := time.NewTimer(c.cfg.unavailable)
	defer silent.Stop()
	// status handles a status change; it reports false once the
	// connection is closed.
	status := func(st natsgo.Status, ok bool) bool {
		switch {
		case !ok || st == natsgo.CLOSED:
			return false
		case c.nc.IsConnected():
			down = nil
			c.answered() // the server answered the reconnect
		case down == nil:
			t.Reset(c.cfg.unavailable)
			down = t.C
		}
		return true
	}
	for {
		select {
		case st, ok := <-c.lossCh:
			if !status(st, ok) {
				return
			}
		case <-down:
			if c.nc.IsConnected() {
				down = nil
				continue
			}
			if slots := c.pending.takeAll(false); len(slots) > 0 {
				c.leftBehind()
				err := fmt.Errorf("%w: not connected within %v (%v), no acknowledgement", messaging.ErrUnavailable, c.cfg.unavailable, c.nc.Status())
				for _, s := range slots {
					c.resolve(s, err)
				}
			}
			t.Reset(c.cfg.unavailable)
		case <-silent.C:
			// A reconnect (an answer) since the last status change is
			// known first: its CONNECTED is on lossCh by now.
			for drained := false; !drained; {
				select {
				case st, ok := <-c.lossCh:
					if !status(st, ok) {
						return
					}
				default:
					drained = true
				}
			}
			silent.Reset(c.expireSilent())
		}
	}
}

// expireSilent fails, with c.errSilent, the publishes awaiting their
// acknowledgement past their deadline (see Client.deadline) while the
// connection is up, and returns how long until the next deadline may pass.
// Each deadline is unavailable_timeout or more after the server's last
// answer: while answers come it only moves that wait on, and it looks
// through the publishes in flight once the server has answered nothing
// for the unavailable timeout.
func (c *Client) expireSilent() time.Duration {
	if !c.nc.IsConnected() {
		return c.cfg.unavailable // the loss is the other timer's
	}
	now := time.Now()
	if next := c.deadline(time.Time{}); now.Before(next) {
		return next.Sub(now)
	}
	next := now.Add(c.cfg.unavailable)
	var expired []pubSlot
	c.pending.mu.Lock()
	for nm, s := range c.pending.m {
		if dl := c.deadline(s.sent()); now.Before(dl) {
			next = minTime(next, dl)
		} else {
			expired = append(expired, s)
			delete(c.pending.m, nm)
		}
	}
	c.pending.mu.Unlock()
	if len(expired) > 0 {
		c.leftBehind()
	}
	for _, s := range expired {
		c.resolve(s, c.errSilent)
	}
	return next.Sub(now)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// stopWatch stops watchLoss and waits for it (Close, once no publish is in
// flight).
func (c *Client) stopWatch() {
	if c.lossCh != nil {
		c.nc.RemoveStatusListener(c.lossCh)
		<-c.lossDone
	}
}

// prepareOne makes the checks Publish makes before encoding (JetStream
// mode: and sets the ID and Time unless WithCallerIDs).
func (c *Client) prepareOne(topic string, m *messaging.Message) error {
	return c.preparePublish(topic, []*messaging.Message{m}, c.maxPayload())
}
