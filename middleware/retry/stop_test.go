package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration/fault"
	"github.com/msgkit/messaging/internal/dispatch"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/internal/layer"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/middleware/timeout"
)

var errBoom = errors.New("boom")

// waitCtx is a handler that waits for its context and returns its error.
func waitCtx(ctx context.Context, _ *messaging.Message) error {
	<-ctx.Done()
	return ctx.Err()
}

// contexts are the handler contexts of a consumer that marks them (as the
// consumers of this module do) and of one that does not.
var contexts = map[string]func(context.Context) context.Context{
	"marked":   dispatch.Stoppable,
	"unmarked": func(ctx context.Context) context.Context { return ctx },
}

// TestTimeoutOutsideBrokerModeCountsAttempts: the deadline of a timeout
// layer outside a broker-mode retry (an accepted order) fails the attempt:
// the layer asks for a redelivery after the backoff and gives the message
// up at MaxAttempts, as for any error, instead of taking the deadline for
// the subscription's stop (which would redeliver without backoff or end).
func TestTimeoutOutsideBrokerModeCountsAttempts(t *testing.T) {
	for name, mark := range contexts {
		h := messaging.Chain(waitCtx, mwtest.Must(timeout.New(time.Millisecond)),
			mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(100*time.Millisecond, time.Second), retry.WithJitter(0))))
		ctx := mark(context.Background())
		for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond} {
			err := h(ctx, &messaging.Message{Attempt: attempt})
			if d, ok := messaging.RetryDelay(err); !ok || d != want || messaging.IsPermanent(err) {
				t.Fatalf("%s, attempt %d: got %v (delay %v, set %v, permanent %v), want a retryable error with delay %v",
					name, attempt, err, d, ok, messaging.IsPermanent(err), want)
			}
			if !errors.Is(err, timeout.ErrTimeout) {
				t.Fatalf("%s, attempt %d: %v does not wrap ErrTimeout", name, attempt, err)
			}
		}
		err := h(ctx, &messaging.Message{Attempt: 3})
		if !messaging.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s, last attempt: got %v, want a permanent error wrapping the deadline", name, err)
		}
		if r := dispatch.Invoke(ctx, h, &messaging.Message{Attempt: 3}, 0); r.Outcome != dispatch.Term {
			t.Fatalf("%s, last attempt: the subscription's outcome is %v, want Term (given up)", name, r.Outcome)
		}
	}
}

// TestBrokerModeStopIsNotCounted: a handler that gives up because its
// subscription stops (a context error once the marked context ended) is
// returned as it is, even at the last attempt and with a timeout layer
// outside: the subscription releases it, it is not given up. Without the
// mark, a cancelled context is taken for a stop too.
func TestBrokerModeStopIsNotCounted(t *testing.T) {
	for _, withTimeout := range []bool{false, true} {
		for name, mark := range contexts {
			mws := []messaging.Middleware{mwtest.Must(retry.New(retry.WithMaxAttempts(3)))}
			if withTimeout {
				mws = append([]messaging.Middleware{mwtest.Must(timeout.New(time.Hour))}, mws...)
			}
			parent, stop := context.WithCancel(context.Background())
			ctx := mark(parent)
			h := messaging.Chain(func(ctx context.Context, _ *messaging.Message) error { stop(); return ctx.Err() }, mws...)
			r := dispatch.Invoke(ctx, h, &messaging.Message{Attempt: 3}, 3)
			if name == "marked" && r.Outcome != dispatch.Release {
				t.Errorf("%s, timeout %v: outcome %v (%v), want Release", name, withTimeout, r.Outcome, r.Err)
			}
			err := h(ctx, &messaging.Message{Attempt: 3})
			if _, ok := messaging.RetryDelay(err); ok || messaging.IsPermanent(err) || !errors.Is(err, context.Canceled) {
				t.Errorf("%s, timeout %v: got %v, want the context error as it is", name, withTimeout, err)
			}
		}
	}
}

// TestBrokerModeFailureDuringStopCounts: a failure that is no context error
// counts even as the subscription stops, as the subscription counts it.
func TestBrokerModeFailureDuringStopCounts(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	ctx := dispatch.Stoppable(parent)
	h := mwtest.Must(retry.New(retry.WithMaxAttempts(3)))(func(context.Context, *messaging.Message) error { stop(); return errBoom })
	if err := h(ctx, &messaging.Message{Attempt: 1}); messaging.IsPermanent(err) || !errors.Is(err, errBoom) {
		t.Fatalf("attempt 1: got %v, want a retryable error wrapping boom", err)
	} else if _, ok := messaging.RetryDelay(err); !ok {
		t.Fatalf("attempt 1: %v has no backoff", err)
	}
	if err := h(ctx, &messaging.Message{Attempt: 3}); !messaging.IsPermanent(err) {
		t.Fatalf("last attempt: got %v, want permanent", err)
	}
}

// TestInProcessStopKeepsMarks: when the subscription stops during an
// in-process loop, the marks of the handler's error survive: Permanent (the
// message is given up, not redelivered), an inner dead-letter layer's kept
// mark, and a RetryAfter delay; and a stop is still an interruption (a
// Release at the subscription's last attempt, never a give-up).
func TestInProcessStopKeepsMarks(t *testing.T) {
	for name, mark := range contexts {
		for _, tc := range []struct {
			what    string
			fail    func(ctx context.Context) error
			check   func(err error) bool
			max     int // the subscription's MaxAttempts
			outcome dispatch.Outcome
		}{
			{"permanent", func(context.Context) error { return messaging.Permanent(errBoom) },
				func(err error) bool { return messaging.IsPermanent(err) && errors.Is(err, errBoom) }, 1, dispatch.Term},
			{"kept", func(context.Context) error { return layer.Kept(messaging.RetryAfter(errBoom, time.Minute)) },
				func(err error) bool { return layer.IsKept(err) && !messaging.IsPermanent(err) }, 0, dispatch.Nack},
			{"retry-after", func(ctx context.Context) error { return messaging.RetryAfter(ctx.Err(), 7*time.Second) },
				func(err error) bool {
					d, _ := messaging.RetryDelay(err)
					return d == 7*time.Second && errors.Is(err, context.Canceled) && !messaging.IsPermanent(err)
				}, 1, dispatch.Release},
			{"context", func(ctx context.Context) error { return ctx.Err() },
				func(err error) bool { return errors.Is(err, context.Canceled) && !messaging.IsPermanent(err) }, 1, dispatch.Release},
		} {
			mw := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(5), retry.WithBackoff(0, 0)))
			var calls int
			run := func() (context.Context, messaging.Handler) {
				calls = 0
				parent, stop := context.WithCancel(context.Background())
				ctx := mark(parent)
				return ctx, mw(func(ctx context.Context, _ *messaging.Message) error { calls++; stop(); return tc.fail(ctx) })
			}
			ctx, h := run()
			if err := h(ctx, &messaging.Message{Attempt: 1}); !tc.check(err) || calls != 1 {
				t.Errorf("%s, %s: got %v after %d calls", name, tc.what, err, calls)
			}
			if name != "marked" {
				continue
			}
			ctx, h = run()
			if r := dispatch.Invoke(ctx, h, &messaging.Message{Attempt: 1}, tc.max); r.Outcome != tc.outcome {
				t.Errorf("%s, %s: the subscription's outcome (MaxAttempts %d) is %v (%v), want %v", name, tc.what, tc.max, r.Outcome, r.Err, tc.outcome)
			}
		}
	}
}

// TestInProcessCallerDeadline: a deadline of the caller (no subscription
// mark) ends the loop, since no attempt can run after it; the failure counts
// as an attempt: given up when it was the last, else a retryable error
// wrapping the deadline. Under a subscription's mark, the deadline of the
// subscription's own context is its stop: never given up.
func TestInProcessCallerDeadline(t *testing.T) {
	for _, tc := range []struct {
		max       int
		mark      bool
		permanent bool
	}{{3, false, false}, {1, false, true}, {1, true, false}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if tc.mark {
			ctx = dispatch.Stoppable(ctx)
		}
		calls := 0
		h := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(tc.max), retry.WithBackoff(0, 0)))(
			func(ctx context.Context, m *messaging.Message) error { calls++; return waitCtx(ctx, m) })
		err := h(ctx, &messaging.Message{Attempt: 1})
		cancel()
		if messaging.IsPermanent(err) != tc.permanent || !errors.Is(err, context.DeadlineExceeded) || calls != 1 {
			t.Errorf("max %d, marked %v: got %v (permanent %v) after %d calls, want permanent %v wrapping the deadline after 1",
				tc.max, tc.mark, err, messaging.IsPermanent(err), calls, tc.permanent)
		}
	}
}

// TestInProcessBackoffEndsWithContext: the in-process wait between
// attempts ends as soon as ctx is done, with an error wrapping the
// context's error and the attempt's, not permanent.
func TestInProcessBackoffEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(3), retry.WithBackoff(time.Hour, time.Hour)))(
		func(context.Context, *messaging.Message) error { return errBoom })
	res := make(chan error, 1)
	go func() { res <- h(ctx, &messaging.Message{Attempt: 1}) }()
	// Waiting the hour-long backoff (in a select: a wait that ignored ctx,
	// a plain receive from the timer, fails here).
	fault.AwaitGoroutine(t, "retry.(*config).loop", "select")
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) || messaging.IsPermanent(err) {
			t.Fatalf("got %v, want a non-permanent error wrapping context.Canceled and the attempt's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backoff wait did not end with the context")
	}
}
