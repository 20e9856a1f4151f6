package dispatch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

func TestInterrupted(t *testing.T) {
	sub, stop := context.WithCancel(t.Context())
	defer stop()
	hctx := Stoppable(sub)
	timeout, cancelTimeout := context.WithTimeout(hctx, time.Nanosecond) // a middleware's own deadline
	defer cancelTimeout()
	<-timeout.Done()
	if Interrupted(timeout, timeout.Err()) {
		t.Error("a handler's own timeout while its subscription runs counts as interrupted")
	}
	if Interrupted(t.Context(), context.Canceled) {
		t.Error("interrupted without a Stoppable context")
	}
	stop()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{hctx, hctx.Err(), true},
		{timeout, context.DeadlineExceeded, true}, // derived from the handler context
		{hctx, fmt.Errorf("db: %w", context.Canceled), true},
		{hctx, messaging.RetryAfter(context.Canceled, time.Second), true},
		{hctx, messaging.Permanent(context.Canceled), false},
		{hctx, errors.New("boom"), false},
		{hctx, nil, false},
	} {
		if got := Interrupted(tc.ctx, tc.err); got != tc.want {
			t.Errorf("Interrupted(%v) after the subscription stopped = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestInvokeRedeliversInterrupted: a handler that returns its context's
// error because the subscription stopped is nacked, and released at the
// last attempt, not given up; while the subscription runs the same error
// at the last attempt is given up.
func TestInvokeRedeliversInterrupted(t *testing.T) {
	sub, stop := context.WithCancel(t.Context())
	defer stop()
	hctx := Stoppable(sub)
	last := &messaging.Message{Attempt: 3}
	own := func(ctx context.Context, _ *messaging.Message) error {
		ctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	if r := Invoke(hctx, own, last, 3); r.Outcome != Term {
		t.Errorf("own timeout at the last attempt: %v, want Term", r.Outcome)
	}
	stopping := func(ctx context.Context, _ *messaging.Message) error {
		stop()
		<-ctx.Done()
		return ctx.Err()
	}
	if r := Invoke(hctx, stopping, last, 3); r.Outcome != Release {
		t.Errorf("interrupted at the last attempt: %v (%v), want Release", r.Outcome, r.Err)
	}
	if r := Invoke(hctx, stopping, &messaging.Message{Attempt: 2}, 3); r.Outcome != Nack || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("interrupted before the last attempt: %v (%v), want Nack with the context's error", r.Outcome, r.Err)
	}
}

func TestInvokeBatchRedeliversInterrupted(t *testing.T) {
	sub, stop := context.WithCancel(t.Context())
	defer stop()
	msgs := []*messaging.Message{{Attempt: 1}, {Attempt: 1}}
	rs := InvokeBatch(Stoppable(sub), func(ctx context.Context, _ []*messaging.Message) []error {
		stop()
		return []error{ctx.Err(), messaging.Permanent(errors.New("bad"))}
	}, msgs, 1)
	if rs[0].Outcome != Release || rs[1].Outcome != Term {
		t.Errorf("outcomes %v, %v; want Release (interrupted at the last attempt) and Term (Permanent)", rs[0].Outcome, rs[1].Outcome)
	}
}
