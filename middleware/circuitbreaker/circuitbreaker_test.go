package circuitbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/circuitbreaker"
)

func TestOpensAfterFailuresAndRecovers(t *testing.T) {
	const open = 50 * time.Millisecond
	b := mwtest.Must(circuitbreaker.NewBreaker(circuitbreaker.WithConsecutiveFailures(3), circuitbreaker.WithOpenTimeout(open)))
	healthy := false
	calls := 0
	h := b.Middleware()(func(context.Context, *messaging.Message) error {
		calls++
		if healthy {
			return nil
		}
		return errors.New("db down")
	})
	// Permanent errors do not count.
	perm := b.Middleware()(func(context.Context, *messaging.Message) error { return messaging.Permanent(errors.New("bad")) })
	for range 5 {
		_ = perm(context.Background(), &messaging.Message{})
	}
	if b.State() != gobreaker.StateClosed {
		t.Fatalf("permanent errors opened the breaker")
	}
	for range 3 {
		_ = h(context.Background(), &messaging.Message{})
	}
	if b.State() != gobreaker.StateOpen {
		t.Fatalf("state %v after 3 failures, want open", b.State())
	}
	err := h(context.Background(), &messaging.Message{})
	if !errors.Is(err, circuitbreaker.ErrOpen) || messaging.IsPermanent(err) || calls != 3 {
		t.Fatalf("open breaker: %v after %d calls, want retryable ErrOpen without calling", err, calls)
	}
	if d, _ := messaging.RetryDelay(err); d != open {
		t.Errorf("retry delay %v, want %v", d, open)
	}
	healthy = true
	// Time is the subject: the breaker half-opens after OpenTimeout.
	time.Sleep(open + 20*time.Millisecond)
	if err := h(context.Background(), &messaging.Message{}); err != nil {
		t.Fatalf("trial run: %v", err)
	}
	if b.State() != gobreaker.StateClosed {
		t.Fatalf("state %v after a successful trial, want closed", b.State())
	}
}

var errValidation = errors.New("validation failed")

// TestIsFailureNeverSeesSuccess: a WithIsFailure function is asked about
// handler errors only; successful runs never count against the breaker,
// whatever the function says of nil.
func TestIsFailureNeverSeesSuccess(t *testing.T) {
	b := mwtest.Must(circuitbreaker.NewBreaker(
		circuitbreaker.WithConsecutiveFailures(5),
		circuitbreaker.WithIsFailure(func(e error) bool { return !errors.Is(e, errValidation) }),
	))
	calls := 0
	h := b.Middleware()(func(context.Context, *messaging.Message) error { calls++; return nil })
	for i := range 10 {
		if err := h(context.Background(), &messaging.Message{}); err != nil {
			t.Fatalf("run %d: %v after %d handler calls, state %v; want nil", i+1, err, calls, b.State())
		}
	}
	if b.State() != gobreaker.StateClosed || calls != 10 {
		t.Fatalf("state %v after 10 successes (%d handler calls), want closed", b.State(), calls)
	}
}

// halfOpen returns a breaker (1 failure opens it, one trial) made
// half-open, and the handler that fails it (its error is set by the
// caller).
func halfOpen(t *testing.T, opts ...circuitbreaker.Option) (*circuitbreaker.Breaker, messaging.Handler, *error) {
	t.Helper()
	const open = 20 * time.Millisecond
	opts = append([]circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenTimeout(open)}, opts...)
	b := mwtest.Must(circuitbreaker.NewBreaker(opts...))
	herr := errors.New("db down")
	h := b.Middleware()(func(context.Context, *messaging.Message) error { return herr })
	_ = h(context.Background(), &messaging.Message{})
	if b.State() != gobreaker.StateOpen {
		t.Fatalf("state %v after a failure, want open", b.State())
	}
	// Time is the subject: the breaker half-opens after OpenTimeout.
	deadline := time.Now().Add(10 * time.Second)
	for b.State() != gobreaker.StateHalfOpen {
		if time.Now().After(deadline) {
			t.Fatalf("state %v long after the open timeout, want half-open", b.State())
		}
		time.Sleep(open / 4)
	}
	return b, h, &herr
}

// TestNonFailuresDoNotCloseHalfOpen: a trial run that returns an error that
// is not a failure (permanent, cancelled, or one WithIsFailure rejects)
// does not close a half-open breaker, and lets another trial run.
func TestNonFailuresDoNotCloseHalfOpen(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		opts []circuitbreaker.Option
	}{
		"Permanent": {err: messaging.Permanent(errors.New("bad message"))},
		"Canceled":  {err: fmt.Errorf("query: %w", context.Canceled)},
		"IsFailure": {err: errValidation, opts: []circuitbreaker.Option{circuitbreaker.WithIsFailure(func(e error) bool { return !errors.Is(e, errValidation) })}},
	} {
		t.Run(name, func(t *testing.T) {
			b, h, herr := halfOpen(t, tc.opts...)
			*herr = tc.err
			if err := h(context.Background(), &messaging.Message{}); err != tc.err {
				t.Fatalf("trial run: %v, want the handler's %v", err, tc.err)
			}
			if s := b.State(); s != gobreaker.StateHalfOpen {
				t.Fatalf("state %v after a trial returning %v, want still half-open", s, tc.err)
			}
			// The dependency was not checked: the next run is a trial.
			*herr = errors.New("db still down")
			if err := h(context.Background(), &messaging.Message{}); err != *herr {
				t.Fatalf("second trial: %v, want the handler's error", err)
			}
			if s := b.State(); s != gobreaker.StateOpen {
				t.Fatalf("state %v after a failed trial, want open", s)
			}
		})
	}
}

// TestNonFailuresDoNotBreakARun: an error that is not a failure does not
// end a run of consecutive failures.
func TestNonFailuresDoNotBreakARun(t *testing.T) {
	b := mwtest.Must(circuitbreaker.NewBreaker(circuitbreaker.WithConsecutiveFailures(5)))
	var herr error
	h := b.Middleware()(func(context.Context, *messaging.Message) error { return herr })
	run := func(err error) {
		t.Helper()
		herr = err
		if got := h(context.Background(), &messaging.Message{}); got != err {
			t.Fatalf("run: %v, want the handler's %v (state %v)", got, err, b.State())
		}
	}
	for range 4 {
		run(errors.New("db down"))
	}
	run(messaging.Permanent(errors.New("bad message")))
	run(context.Canceled)
	run(errors.New("db down"))
	if s := b.State(); s != gobreaker.StateOpen {
		t.Fatalf("state %v after 5 failures around a permanent error and a cancellation, want open", s)
	}
}

// TestHandlerOpenStateErrorKept: a handler's own error wrapping
// gobreaker.ErrOpenState (a breaker guarding its HTTP client) is returned as
// it is, not taken for this breaker being open.
func TestHandlerOpenStateErrorKept(t *testing.T) {
	b := mwtest.Must(circuitbreaker.NewBreaker(circuitbreaker.WithConsecutiveFailures(5), circuitbreaker.WithOpenTimeout(time.Minute)))
	for name, herr := range map[string]error{
		"OpenState":       messaging.RetryAfter(fmt.Errorf("inventory API: %w", gobreaker.ErrOpenState), 3*time.Second),
		"TooManyRequests": messaging.Permanent(fmt.Errorf("inventory API: %w", gobreaker.ErrTooManyRequests)),
	} {
		t.Run(name, func(t *testing.T) {
			h := b.Middleware()(func(context.Context, *messaging.Message) error { return herr })
			err := h(context.Background(), &messaging.Message{})
			if err != herr || errors.Is(err, circuitbreaker.ErrOpen) {
				t.Fatalf("got %v, want the handler's error %v", err, herr)
			}
		})
	}
	if s := b.State(); s != gobreaker.StateClosed {
		t.Fatalf("state %v, want closed", s)
	}
}

// TestHalfOpenRequestsSuccessesClose: with WithHalfOpenRequests(3), a
// half-open breaker lets three trial runs through at once and refuses a
// fourth; it closes only once all three have succeeded.
func TestHalfOpenRequestsSuccessesClose(t *testing.T) {
	b, h, herr := halfOpen(t, circuitbreaker.WithHalfOpenRequests(3))
	*herr = nil
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	gated := b.Middleware()(func(context.Context, *messaging.Message) error {
		started <- struct{}{}
		<-release
		return nil
	})
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- gated(context.Background(), &messaging.Message{}) }()
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("fewer than 3 trial runs let through at once")
		}
	}
	if err := h(context.Background(), &messaging.Message{}); !errors.Is(err, circuitbreaker.ErrOpen) {
		t.Errorf("a fourth run while 3 trials run: %v, want ErrOpen", err)
	}
	release <- struct{}{}
	if err := <-results; err != nil {
		t.Fatalf("trial run: %v", err)
	}
	if s := b.State(); s != gobreaker.StateHalfOpen {
		t.Errorf("state %v after 1 of 3 trials succeeded, want still half-open", s)
	}
	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("trial run: %v", err)
		}
	}
	if s := b.State(); s != gobreaker.StateClosed {
		t.Errorf("state %v after 3 successful trials, want closed", s)
	}
}
