// Package asyncpub holds the machinery the adapters share for
// messaging.AsyncPublisher: a window of pending messages with Flush and
// Close (Tracker), and lanes that send queued messages in batches through a
// batch publish (Batcher).
package asyncpub

import (
	"context"
	"fmt"
	"sync"

	"github.com/msgkit/messaging"
)

// DefaultWindow is the number of messages an adapter keeps pending (queued
// or waiting for the broker) per client unless it documents another bound:
// about what raw JetStream's async publisher keeps in flight (4,000).
const DefaultWindow = 4096

// Tracker counts the pending messages of one client: it bounds them (the
// window), lets Flush wait until none is pending, and refuses new ones once
// closed. Every message that Begin admits must be ended with End exactly
// once.
type Tracker struct {
	sem     chan struct{} // one slot per pending message
	closing chan struct{} // closed by Close

	mu     sync.Mutex
	n      int           // pending messages
	idle   chan struct{} // closed while n == 0; replaced when n leaves 0
	closed bool
}

// NewTracker returns a Tracker whose window is sem: a slot is taken per
// pending message and given back by End. Adapters that bound their
// synchronous publishes with a semaphore pass it, so both share one window;
// nil makes a window of DefaultWindow.
func NewTracker(sem chan struct{}) *Tracker {
	if sem == nil {
		sem = make(chan struct{}, DefaultWindow)
	}
	idle := make(chan struct{})
	close(idle)
	return &Tracker{sem: sem, closing: make(chan struct{}), idle: idle}
}

// Begin admits one message: it takes a slot of the window, waiting while it
// is full until ctx ends or the tracker closes. It fails with an error
// wrapping ctx's error or messaging.ErrClosed. While it waits for room the
// message counts as pending: a Flush called meanwhile waits for it too.
func (t *Tracker) Begin(ctx context.Context) error {
	return t.begin(ctx, nil)
}

// begin is Begin; when the message, counted as pending while it waited for
// room, fails, failed (when not nil) is called with the error before it
// stops counting (also when failed panics), so that a Flush waiting for
// it returns only after failed has.
func (t *Tracker) begin(ctx context.Context, failed func(error)) error {
	select {
	case t.sem <- struct{}{}:
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.closed {
			<-t.sem
			return messaging.ErrClosed
		}
		t.count()
		return nil
	default:
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return messaging.ErrClosed
	}
	t.count() // pending while it waits for room
	t.mu.Unlock()
	var err error
	select {
	case t.sem <- struct{}{}:
		t.mu.Lock()
		closed := t.closed
		t.mu.Unlock()
		if !closed {
			return nil
		}
		<-t.sem
		err = messaging.ErrClosed
	case <-ctx.Done():
		err = fmt.Errorf("messaging: waiting for room in the publish window: %w", ctx.Err())
	case <-t.closing:
		err = messaging.ErrClosed
	}
	defer t.uncount()
	if failed != nil {
		failed(err)
	}
	return err
}

// count adds a pending message; t.mu is held.
func (t *Tracker) count() {
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

// uncount removes a pending message.
func (t *Tracker) uncount() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// End reports the result of a message Begin admitted: it calls done (when
// not nil), then frees the message's slot, also when done panics (the
// panic goes on to End's caller: a goroutine that recovers it must not
// leave Flush waiting for the message forever).
func (t *Tracker) End(done messaging.PublishCallback, m *messaging.Message, err error) {
	defer t.end()
	if done != nil {
		done(m, err)
	}
}

// end frees the slot of a message whose result was reported.
func (t *Tracker) end() {
	t.uncount()
	<-t.sem
}

// Fail reports a message that failed at once, before Begin or instead of
// it (invalid, closed, ctx done): it calls done, when not nil, and counts
// the message pending while done runs, without a slot of the window, so
// that a Flush on another goroutine waits for the callback to return. A
// panic in done goes on to Fail's caller; the message counts as ended.
func (t *Tracker) Fail(done messaging.PublishCallback, m *messaging.Message, err error) {
	if done == nil {
		return
	}
	t.mu.Lock()
	t.count()
	t.mu.Unlock()
	defer t.uncount()
	done(m, err)
}

// Flush waits until no message is pending, or ctx ends.
func (t *Tracker) Flush(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("messaging: flush: %w", ctx.Err())
	}
}

// Close makes Begin fail with messaging.ErrClosed from now on (also for
// callers waiting for the window). Messages already admitted stay pending
// until ended. It is idempotent.
func (t *Tracker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.closing)
	}
}

// Closing returns a channel closed by Close.
func (t *Tracker) Closing() <-chan struct{} { return t.closing }

// Closed reports whether Close was called.
func (t *Tracker) Closed() bool {
	select {
	case <-t.closing:
		return true
	default:
		return false
	}
}

// Fail reports a message that failed before Begin (or instead of it):
// it calls done, when not nil.
func Fail(done messaging.PublishCallback, m *messaging.Message, err error) {
	if done != nil {
		done(m, err)
	}
}
