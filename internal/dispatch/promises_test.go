package dispatch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/msgkit/messaging"
)

// TestInvokeBatchPanicAndWrongLength: a batch handler that panics, or
// returns a slice of another length than its messages, fails every
// message (a retryable nack), the panic as an error wrapping
// ErrHandlerPanic.
func TestInvokeBatchPanicAndWrongLength(t *testing.T) {
	msgs := []*messaging.Message{{ID: "a", Attempt: 1}, {ID: "b", Attempt: 1}}
	for _, tc := range []struct {
		name string
		h    messaging.BatchHandler
		want error
	}{
		{"panic", func(context.Context, []*messaging.Message) []error { panic("oops") }, messaging.ErrHandlerPanic},
		{"short", func(context.Context, []*messaging.Message) []error { return []error{nil} }, nil},
		{"long", func(context.Context, []*messaging.Message) []error { return []error{nil, nil, nil} }, nil},
	} {
		rs := InvokeBatch(t.Context(), tc.h, msgs, 0)
		if len(rs) != len(msgs) {
			t.Fatalf("%s: %d results for %d messages", tc.name, len(rs), len(msgs))
		}
		for i, r := range rs {
			if r.Outcome != Nack || r.Err == nil || (tc.want != nil && !errors.Is(r.Err, tc.want)) {
				t.Errorf("%s: message %d: %v (%v), want a nack with an error (wrapping %v)", tc.name, i, r.Outcome, r.Err, tc.want)
			}
		}
	}
}

// TestInvokePanicValueWrappingHandlerPanic: a panic whose value already
// wraps ErrHandlerPanic (a recovery layer's error passed on) is kept as
// is, so a permanent one stays permanent: the message is terminated.
func TestInvokePanicValueWrappingHandlerPanic(t *testing.T) {
	perm := messaging.Permanent(fmt.Errorf("%w: inner", messaging.ErrHandlerPanic))
	r := Invoke(t.Context(), func(context.Context, *messaging.Message) error { panic(perm) }, &messaging.Message{Attempt: 1}, 0)
	if r.Outcome != Term || r.Err != perm {
		t.Fatalf("panic with a permanent ErrHandlerPanic: %v (%v), want Term with the panic's error as is", r.Outcome, r.Err)
	}
}

// TestSubscriptionLifecycle: a context error that ends the subscription
// without its own stop is its error; Finish ends the handler context and
// runs onFinish once; Shutdown whose ctx ends first cancels the handler
// context (marked Stoppable, so a handler giving up then is interrupted:
// released at its last attempt, not terminated) and returns ctx's error.
func TestSubscriptionLifecycle(t *testing.T) {
	finished := 0
	s := NewSubscription(t.Context(), func() { finished++ })
	s.Finish(fmt.Errorf("fetch: %w", context.DeadlineExceeded))
	s.Finish(nil)
	if !errors.Is(s.Err(), context.DeadlineExceeded) {
		t.Errorf("Err %v after a fetch timed out while running, want it (not a clean end)", s.Err())
	}
	if s.HandlerContext().Err() == nil {
		t.Error("handler context live after Finish")
	}
	if finished != 1 {
		t.Errorf("onFinish ran %d times, want 1", finished)
	}

	s2 := NewSubscription(t.Context(), nil)
	if !Marked(s2.HandlerContext()) {
		t.Fatal("handler context not marked Stoppable")
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s2.Shutdown(ended); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with its ctx ended: %v, want context.Canceled", err)
	}
	if s2.HandlerContext().Err() == nil {
		t.Fatal("handler context live after Shutdown's ctx ended")
	}
	giveUp := func(ctx context.Context, _ *messaging.Message) error { return ctx.Err() }
	if r := Invoke(s2.HandlerContext(), giveUp, &messaging.Message{Attempt: 3}, 3); r.Outcome != Release {
		t.Errorf("handler interrupted by Shutdown at its last attempt: %v (%v), want Release", r.Outcome, r.Err)
	}
	s2.Finish(nil)
	if err := s2.Close(); err != nil || s2.Err() != nil {
		t.Errorf("Close %v, Err %v after a clean Finish", err, s2.Err())
	}
}

// TestReadArgsRejectsInvalidPosition: Read refuses an invalid starting
// position with ErrInvalidOption.
func TestReadArgsRejectsInvalidPosition(t *testing.T) {
	h := func(context.Context, *messaging.Message) error { return nil }
	if err := ReadArgs(false, "t", messaging.Position{Kind: messaging.PositionAtOffset}, h); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("ReadArgs with an empty offset: %v, want ErrInvalidOption", err)
	}
	if err := ReadArgs(false, "t", messaging.Position{Kind: messaging.PositionEarliest}, h); err != nil {
		t.Errorf("ReadArgs from the earliest: %v", err)
	}
}

// TestPoolCloseIdempotent: Close may be called again after it returned.
func TestPoolCloseIdempotent(t *testing.T) {
	settled := 0
	p := NewPool(t.Context(), 2, 4, func(context.Context, *messaging.Message) error { return nil }, func(Delivery, Result) { settled++ }, 0)
	if !p.Submit(t.Context(), Delivery{Msg: &messaging.Message{}}) {
		t.Fatal("Submit refused a delivery")
	}
	p.Close()
	p.Close()
	if settled != 1 {
		t.Fatalf("%d settlements, want 1", settled)
	}
}

// TestSubmitBlockedReturnsWhenHandlerContextEnds: a Submit waiting for
// room in a full queue returns false once the handler context ends, even
// when its own ctx (not derived from it) lives and the handler in flight
// goes on: the caller keeps the delivery.
func TestSubmitBlockedReturnsWhenHandlerContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		handlerCtx, cancel := context.WithCancel(bg)
		started, unblock := make(chan struct{}), make(chan struct{})
		p := NewPool(handlerCtx, 1, 1, func(_ context.Context, m *messaging.Message) error {
			if m.ID == "running" {
				close(started)
				<-unblock // ignores its context
			}
			return nil
		}, func(Delivery, Result) {}, 0)
		defer p.Close()
		defer close(unblock)
		p.Submit(bg, Delivery{Msg: &messaging.Message{ID: "running"}})
		<-started
		if !p.Submit(bg, Delivery{Msg: &messaging.Message{ID: "queued"}}) {
			t.Fatal("Submit refused a delivery with room in the queue")
		}
		submitted := make(chan bool, 1)
		go func() { submitted <- p.Submit(bg, Delivery{Msg: &messaging.Message{ID: "blocked"}}) }()
		synctest.Wait() // Submit waits for room
		cancel()
		synctest.Wait()
		select {
		case ok := <-submitted:
			if ok {
				t.Fatal("Submit took a delivery after the handler context ended")
			}
		default:
			t.Error("Submit waiting for room still waits after the handler context ended")
			unblock <- struct{}{} // let the handler return, so that Submit does
			<-submitted
		}
	})
}
