package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/msgkit/messaging"
)

// Subscription implements messaging.Subscription for adapters. The adapter
// runs its fetch loop with FetchContext, which ends on Close or when the
// parent context is done, hands deliveries to a Pool whose handlers use
// HandlerContext (ended only with the parent: Close lets handlers finish),
// and calls Finish when the loop and the pool are done.
type Subscription struct {
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
	fetchCtx       context.Context
	stop           context.CancelFunc
	done           chan struct{}
	finishOnce     sync.Once
	err            error
	onFinish       func()
}

// NewSubscription returns a subscription bound to parent. onFinish, if not
// nil, runs once when the subscription finishes (adapters use it to forget the
// subscription).
func NewSubscription(parent context.Context, onFinish func()) *Subscription {
	handlerCtx, cancelHandlers := context.WithCancel(parent)
	handlerCtx = Stoppable(handlerCtx)
	fetchCtx, stop := context.WithCancel(handlerCtx)
	return &Subscription{handlerCtx: handlerCtx, cancelHandlers: cancelHandlers, fetchCtx: fetchCtx, stop: stop, done: make(chan struct{}), onFinish: onFinish}
}

// FetchContext is done when the subscription must stop fetching.
func (s *Subscription) FetchContext() context.Context { return s.fetchCtx }

// HandlerContext is the context handlers run with.
func (s *Subscription) HandlerContext() context.Context { return s.handlerCtx }

// Stop asks the fetch loop to stop, without waiting.
func (s *Subscription) Stop() { s.stop() }

// Finish records how the subscription ended and wakes waiters. A context
// error caused by the subscription's own stop counts as a clean end.
func (s *Subscription) Finish(err error) {
	s.finishOnce.Do(func() {
		if err != nil && s.fetchCtx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			err = nil
		}
		s.err = err
		s.stop()
		s.cancelHandlers()
		if s.onFinish != nil {
			s.onFinish()
		}
		close(s.done)
	})
}

// Close stops the subscription and waits until it has finished.
func (s *Subscription) Close() error {
	s.stop()
	<-s.done
	return nil
}

// Shutdown stops the subscription and waits until it has finished or ctx
// ends; then it cancels the handlers' context and returns ctx's error. The
// adapters not yet moved onto package engine settle what those handlers
// return as usual (a context error is a nack), not as a release.
func (s *Subscription) Shutdown(ctx context.Context) error {
	s.stop()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.cancelHandlers()
		return ctx.Err()
	}
}

// Done is closed once the subscription has finished.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is the error that ended the subscription, or nil.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

var _ messaging.Subscription = (*Subscription)(nil)

// Set tracks the live subscriptions of a client so Close can stop them all.
// The zero value is ready to use.
type Set struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Add records s; it fails with an error wrapping messaging.ErrClosed after
// CloseAll.
func (t *Set) Add(s *Subscription) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("messaging: subscribe: %w", messaging.ErrClosed)
	}
	if t.subs == nil {
		t.subs = map[*Subscription]struct{}{}
	}
	t.subs[s] = struct{}{}
	return nil
}

// Remove forgets s.
func (t *Set) Remove(s *Subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// CloseAll refuses new subscriptions, closes every tracked one and waits for
// them. It is idempotent.
func (t *Set) CloseAll() {
	t.mu.Lock()
	t.closed = true
	subs := make([]*Subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		s.Stop()
	}
	for _, s := range subs {
		<-s.Done()
	}
}

// Closed reports whether CloseAll was called.
func (t *Set) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}
