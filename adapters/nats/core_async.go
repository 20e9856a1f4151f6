package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// coreAsync is core mode's PublishAsync (see Client.PublishAsync): the
// caller publishes on the connection and appends the message to list under
// mu, so list order is wire order; one flusher goroutine, started on demand,
// takes the list, flushes once and ends every message of it with the
// flush's result, while the next list fills. Its zero value is ready but
// for closing (made by newClient).
type coreAsync struct {
	closedFlag atomic.Bool            // closed, read without mu
	closing    chan struct{}          // closed by close
	epoch      time.Time              // the origin of coreItem.at (made by newClient)
	topic      atomic.Pointer[string] // the last topic found valid
	// maxPayload is the connection's, read by the flusher once per list
	// while it runs (0: read it per message). A message too large for a
	// server reconnected to meanwhile that passes the check is refused by
	// nats.go (ErrMaxPayload, an ErrMessageTooLarge).
	maxPayload atomic.Int64

	// loose counts the messages sent without a callback that no Flush or
	// Close has taken yet (see publishLoose and takeLoose).
	loose atomic.Int64

	mu      sync.Mutex
	list    []coreItem // sent since the flusher last took the list
	spare   []coreItem // the last list ended, kept for reuse
	n       int        // pending: sent and not ended (the window)
	waiting int        // callers waiting for room, or failing at once: pending for Flush too
	running bool       // a flusher serves list
	down    bool       // the flusher found the connection down
	closed  bool
	idle    chan struct{} // made by Flush while n or waiting > 0, closed when both are 0
	room    chan struct{} // made by a caller waiting for the window, closed when slots free
	wg      sync.WaitGroup
}

// coreItem is a message of the list, or (done nil) the mark a Flush or
// Close left for the loose messages sent before it.
type coreItem struct {
	topic string
	msg   *messaging.Message
	done  messaging.PublishCallback
	// at is when it was sent, or when the flusher found the connection
	// lost if it was sent before: its unavailable timeout runs from then.
	// It is kept as the monotonic time since epoch (see stamp).
	at time.Duration
}

// stamp is the time now as a coreItem's at. time.Since reads only the
// monotonic clock, where time.Now reads the wall clock too: 28 against
// 53 ns a message on this machine's kvm-clock.
func (a *coreAsync) stamp() time.Duration { return time.Since(a.epoch) }

// sent is the time of a coreItem's at.
func (a *coreAsync) sent(at time.Duration) time.Time { return a.epoch.Add(at) }

// publishAsyncCore is PublishAsync in core mode.
func (c *Client) publishAsyncCore(ctx context.Context, topic string, m *messaging.Message, done messaging.PublishCallback) {
	a := &c.core
	fail := func(err error) { c.failAtOnce(done, m, err) }
	switch {
	case m == nil:
		fail(fmt.Errorf("nats: publish to %s: nil message: %w", topic, messaging.ErrInvalidOption))
		return
	case a.closedFlag.Load():
		fail(fmt.Errorf("nats: publish to %s: %w", topic, messaging.ErrClosed))
		return
	}
	// The checks Publish makes (the topic once while it stays the same); a
	// message that is not bare is encoded now.
	maxPayload := a.maxPayload.Load()
	if maxPayload == 0 {
		maxPayload = c.maxPayload()
	}
	var err error
	if t := a.topic.Load(); t != nil && *t == topic {
		err = driver.CheckMessage(topic, m, int(maxPayload)-sizeSlack)
	} else if err = driver.CheckPublish(topic, []*messaging.Message{m}, int(maxPayload)-sizeSlack); err == nil {
		valid := topic // on the heap only here
		a.topic.Store(&valid)
	}
	if err != nil {
		fail(err)
		return
	}
	var nm *natsgo.Msg
	if !bare(m) {
		if nm, err = encode(topic, m, maxPayload, 0); err != nil {
			fail(fmt.Errorf("nats: publish to %s: %w", topic, err))
			return
		}
	}
	if err := ctx.Err(); err != nil {
		fail(fmt.Errorf("nats: publish to %s: %w", topic, err))
		return
	}
	if done == nil {
		c.publishLoose(topic, m, nm)
		return
	}
	a.mu.Lock()
	waited := false // counted in waiting (see endWaiting)
	fail = func(err error) {
		if waited {
			c.endWaiting(done, m, err)
		} else {
			c.failAtOnce(done, m, err)
		}
	}
	for a.n >= asyncpub.DefaultWindow && !a.closed {
		if !waited {
			waited = true
			a.waiting++
		}
		if a.room == nil {
			a.room = make(chan struct{})
		}
		room := a.room
		a.mu.Unlock()
		select {
		case <-room:
		case <-a.closing:
		case <-ctx.Done():
			fail(fmt.Errorf("nats: publish to %s: waiting for room in the publish window: %w", topic, ctx.Err()))
			return
		}
		a.mu.Lock()
	}
	if a.closed {
		a.mu.Unlock()
		fail(fmt.Errorf("nats: publish to %s: %w", topic, messaging.ErrClosed))
		return
	}
	// While the connection is down nats.go keeps the message in its
	// reconnect buffer; the flusher waits for the connection.
	if nm != nil {
		err = c.nc.PublishMsg(nm)
	} else {
		err = c.nc.Publish(topic, m.Payload)
	}
	if err != nil {
		a.mu.Unlock()
		fail(fmt.Errorf("nats: publish to %s: %w", topic, c.wrapConnErr(err)))
		return
	}
	if waited {
		a.waiting-- // pending from now on (n)
	}
	a.n++
	// Under the lock: the list is in the order of at.
	a.list = append(a.list, coreItem{topic: topic, msg: m, done: done, at: a.stamp()})
	if !a.running {
		a.running = true
		a.wg.Add(1)
		go c.flushCore()
	}
	a.mu.Unlock()
}

// endWaiting reports the failure of a message that waited for room in the
// window (counted in waiting, so that a Flush meanwhile waits for it), then
// stops counting it, also when done panics.
func (c *Client) endWaiting(done messaging.PublishCallback, m *messaging.Message, err error) {
	a := &c.core
	defer func() {
		a.mu.Lock()
		a.waiting--
		a.idleIfDone()
		a.mu.Unlock()
	}()
	asyncpub.Fail(done, m, err)
}

// failAtOnce reports the failure of a message that neither waited for
// room nor was sent (invalid, closed client, ctx done), counting it as
// pending while done runs, so that a Flush on another goroutine waits for
// the callback to return.
func (c *Client) failAtOnce(done messaging.PublishCallback, m *messaging.Message, err error) {
	if done == nil {
		return
	}
	a := &c.core
	a.mu.Lock()
	a.waiting++
	a.mu.Unlock()
	c.endWaiting(done, m, err)
}

// idleIfDone wakes Flush when nothing is pending any more; mu is held.
func (a *coreAsync) idleIfDone() {
	if a.n == 0 && a.waiting == 0 && a.idle != nil {
		close(a.idle)
		a.idle = nil
	}
}

// publishLoose sends a message given without a callback: nobody takes its
// result, so it is not tracked one by one. It is written as nats.go's
// Publish writes it, outside the window (nats.go's write buffer holds the
// caller back, and its reconnect buffer bounds what waits for the
// connection), and counted in loose, for which the next Flush or Close
// leaves one mark in the list: that mark's flush covers every loose message
// written before it. A message nats.go refuses is dropped.
func (c *Client) publishLoose(topic string, m *messaging.Message, nm *natsgo.Msg) {
	var err error
	if nm != nil {
		err = c.nc.PublishMsg(nm)
	} else {
		err = c.nc.Publish(topic, m.Payload)
	}
	if err == nil {
		c.core.loose.Add(1)
	}
}

// takeLoose, with mu held, puts in the list one mark for the loose messages
// sent since the last mark, if any: it ends (unreported) with the flush
// that covers them, or with the unavailable timeout counted from now.
func (c *Client) takeLoose() {
	a := &c.core
	if a.loose.Swap(0) == 0 {
		return
	}
	a.n++
	a.list = append(a.list, coreItem{at: a.stamp()})
	if !a.running {
		a.running = true
		a.wg.Add(1)
		go c.flushCore()
	}
}

// flushCore is the flusher: one flush per list until no message is left.
func (c *Client) flushCore() {
	a := &c.core
	defer a.wg.Done()
	for {
		err := c.awaitCore()
		a.mu.Lock()
		list := a.list
		if len(list) == 0 {
			a.running = false
			a.maxPayload.Store(0)
			a.mu.Unlock()
			return
		}
		if err == nil {
			a.down = false
		} else if !errors.Is(err, messaging.ErrClosed) {
			// The connection is down and the messages left are not due
			// yet: wait for it again (without flushing a connection that
			// is not there).
			a.mu.Unlock()
			continue
		}
		a.maxPayload.Store(c.maxPayload())
		a.list, a.spare = a.spare, nil
		a.mu.Unlock()
		// Everything in list was written before this flush.
		stage := "waiting for the connection"
		rest := list
		if err == nil {
			stage = "flush"
			rest, err = c.flushList(list)
		}
		c.endCore(rest, stage, err)
		clear(list)
		a.mu.Lock()
		a.spare = list[:0]
		a.mu.Unlock()
	}
}

// flushList flushes the connection for the messages of list: while the
// server answers nothing, each ends with c.errSilent as its deadline (see
// Client.deadline) passes, and the others wait on. It returns the messages
// left and the flush's result for them.
func (c *Client) flushList(list []coreItem) ([]coreItem, error) {
	off := 0
	err := c.flushSent(context.Background(), len(list), func(i int) time.Time { return c.core.sent(list[i].at) }, func(k int) {
		c.endCore(list[off:k], "flush", c.errSilent)
		off = k
	})
	if err != nil && err != c.errSilent {
		err = c.wrapConnErr(err)
	}
	return list[off:], err
}

// endCore ends the messages of list with err (nil: sent), then frees their
// slots of the window.
func (c *Client) endCore(list []coreItem, stage string, err error) {
	for _, it := range list {
		if it.done == nil {
			continue // a mark for loose messages
		}
		var e error
		if err != nil {
			e = fmt.Errorf("nats: publish to %s: %s: %w", it.topic, stage, err)
		}
		it.done(it.msg, e)
	}
	a := &c.core
	a.mu.Lock()
	a.n -= len(list)
	if a.room != nil {
		close(a.room)
		a.room = nil
	}
	a.idleIfDone()
	a.mu.Unlock()
}

// errCoreWaiting is awaitCore's result when the connection is still down but
// the list holds no message due yet.
var errCoreWaiting = errors.New("nats: waiting for the connection")

// awaitCore returns nil while the connection is up. While it is down, each
// message of the list waits for it up to the unavailable timeout after its
// call (or, for one sent before the flusher noticed the loss, after the
// flusher noticed it), then fails with messaging.ErrUnavailable; awaitCore
// returns nil once the connection is back, errCoreWaiting when no message
// is left, or an error wrapping messaging.ErrClosed when Close begins (or
// the connection is closed).
func (c *Client) awaitCore() error {
	if c.nc.IsConnected() {
		return nil
	}
	a := &c.core
	a.mu.Lock()
	// The messages sent before the loss was known count from now.
	if !a.down {
		a.down = true
		now := a.stamp()
		for i := range a.list {
			a.list[i].at = now
		}
	}
	a.mu.Unlock()
	ch := c.nc.StatusChanged(natsgo.CONNECTED, natsgo.CLOSED)
	defer c.nc.RemoveStatusListener(ch)
	var w wakeup
	defer w.stop()
	var due []coreItem
	for {
		switch {
		case c.nc.IsConnected():
			c.answered() // the server answered the reconnect
			return nil
		case c.nc.IsClosed():
			return fmt.Errorf("%w: %w", messaging.ErrClosed, natsgo.ErrConnectionClosed)
		}
		// The list is in call order, so the messages due are its first.
		now := a.stamp()
		a.mu.Lock()
		k := 0
		for k < len(a.list) && now >= a.list[k].at+c.cfg.unavailable {
			k++
		}
		due = append(due[:0], a.list[:k]...)
		rest := copy(a.list, a.list[k:])
		clear(a.list[rest:])
		a.list = a.list[:rest]
		var next time.Time
		if rest > 0 {
			next = a.sent(a.list[0].at + c.cfg.unavailable)
		}
		a.mu.Unlock()
		if len(due) > 0 {
			c.endCore(due, "waiting for the connection", fmt.Errorf("%w: not connected within %v (%v)", messaging.ErrUnavailable, c.cfg.unavailable, c.nc.Status()))
			clear(due)
		}
		if next.IsZero() {
			return errCoreWaiting
		}
		if w.wait(next, ch, a.closing) {
			return fmt.Errorf("%w (the client closed)", messaging.ErrClosed)
		}
	}
}

// flushCoreAsync is Flush in core mode: it waits until no message is
// pending, loose messages included (see takeLoose).
func (c *Client) flushCoreAsync(ctx context.Context) error {
	a := &c.core
	for {
		a.mu.Lock()
		if !a.closed {
			c.takeLoose()
		}
		if a.n == 0 && a.waiting == 0 {
			a.mu.Unlock()
			return nil
		}
		if a.idle == nil {
			a.idle = make(chan struct{})
		}
		idle := a.idle
		a.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("nats: flush: %w", ctx.Err())
		}
	}
}

// closeCoreAsync refuses new messages and waits for the lists in flight
// (with a mark for the loose messages sent before it): each flush is
// bounded by the request timeout, a wait for the connection ends when Close
// begins. It then waits for the callers that waited for room in the window
// (woken by closing, they fail with messaging.ErrClosed) and those failing
// at once, until their callbacks have returned.
func (c *Client) closeCoreAsync() {
	a := &c.core
	a.mu.Lock()
	if !a.closed {
		c.takeLoose()
		a.closed = true
		a.closedFlag.Store(true)
		close(a.closing)
	}
	a.mu.Unlock()
	a.wg.Wait()
	for {
		a.mu.Lock()
		if a.n == 0 && a.waiting == 0 {
			a.mu.Unlock()
			return
		}
		if a.idle == nil {
			a.idle = make(chan struct{})
		}
		idle := a.idle
		a.mu.Unlock()
		<-idle
	}
}

// wakeup is the timer of a wait for the connection that ends at several
// deadlines in turn (made once, on an outage path only).
type wakeup struct{ t *time.Timer }

// wait waits until at, a status change on ch or the end of stop, and
// reports whether stop ended.
func (w *wakeup) wait(at time.Time, ch <-chan natsgo.Status, stop <-chan struct{}) bool {
	if w.t == nil {
		w.t = time.NewTimer(time.Until(at))
	} else {
		w.t.Reset(time.Until(at))
	}
	select {
	case <-ch:
	case <-w.t.C:
	case <-stop:
		return true
	}
	return false
}

func (w *wakeup) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}
