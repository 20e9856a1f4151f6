package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/middleware/timeout"
)

var errBoom = errors.New("boom")

func failing(context.Context, *messaging.Message) error { return errBoom }

func TestBrokerModeAsksForRedeliveryWithBackoff(t *testing.T) {
	h := mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(100*time.Millisecond, time.Second), retry.WithJitter(0)))(failing)
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond} {
		err := h(context.Background(), &messaging.Message{Attempt: attempt})
		if messaging.IsPermanent(err) {
			t.Fatalf("attempt %d: permanent before the last attempt: %v", attempt, err)
		}
		d, ok := messaging.RetryDelay(err)
		if !ok || d != want {
			t.Fatalf("attempt %d: delay %v (set %v), want %v", attempt, d, ok, want)
		}
		if !errors.Is(err, errBoom) {
			t.Fatalf("attempt %d: %v does not wrap the handler error", attempt, err)
		}
	}
	err := h(context.Background(), &messaging.Message{Attempt: 3})
	if !messaging.IsPermanent(err) || !errors.Is(err, errBoom) {
		t.Fatalf("last attempt: got %v, want a permanent error wrapping boom", err)
	}
}

func TestBrokerModePassesSuccessAndPermanent(t *testing.T) {
	mw := mwtest.Must(retry.New(retry.WithMaxAttempts(3)))
	if err := mw(func(context.Context, *messaging.Message) error { return nil })(context.Background(), &messaging.Message{Attempt: 1}); err != nil {
		t.Fatalf("success: %v", err)
	}
	perm := messaging.Permanent(errBoom)
	err := mw(func(context.Context, *messaging.Message) error { return perm })(context.Background(), &messaging.Message{Attempt: 1})
	if !messaging.IsPermanent(err) {
		t.Fatalf("permanent error retried: %v", err)
	}
	if _, ok := messaging.RetryDelay(err); ok {
		t.Fatalf("permanent error got a retry delay: %v", err)
	}
}

func TestRetryableClassifies(t *testing.T) {
	errBad := errors.New("bad input")
	mw := mwtest.Must(retry.New(retry.WithMaxAttempts(5), retry.WithRetryable(func(err error) bool { return !errors.Is(err, errBad) })))
	err := mw(func(context.Context, *messaging.Message) error { return errBad })(context.Background(), &messaging.Message{Attempt: 1})
	if !messaging.IsPermanent(err) || !errors.Is(err, errBad) {
		t.Fatalf("not-retryable error: got %v, want permanent", err)
	}
	err = mw(failing)(context.Background(), &messaging.Message{Attempt: 1})
	if messaging.IsPermanent(err) {
		t.Fatalf("retryable error made permanent: %v", err)
	}
}

func TestHandlerDelayIsKept(t *testing.T) {
	h := mwtest.Must(retry.New(retry.WithMaxAttempts(3)))(func(context.Context, *messaging.Message) error {
		return messaging.RetryAfter(errBoom, 7*time.Second)
	})
	if d, _ := messaging.RetryDelay(h(context.Background(), &messaging.Message{Attempt: 1})); d != 7*time.Second {
		t.Fatalf("delay %v, want the handler's 7s", d)
	}
}

func TestPanicIsRetried(t *testing.T) {
	h := mwtest.Must(retry.New(retry.WithMaxAttempts(2)))(func(context.Context, *messaging.Message) error { panic("oops") })
	err := h(context.Background(), &messaging.Message{Attempt: 1})
	if !errors.Is(err, messaging.ErrHandlerPanic) || messaging.IsPermanent(err) {
		t.Fatalf("first attempt: got %v, want a retryable ErrHandlerPanic", err)
	}
	if err := h(context.Background(), &messaging.Message{Attempt: 2}); !messaging.IsPermanent(err) {
		t.Fatalf("last attempt: got %v, want permanent", err)
	}
}

func TestDelayGrowsAndCaps(t *testing.T) {
	opts := []retry.Option{retry.WithBackoff(10*time.Millisecond, 50*time.Millisecond), retry.WithJitter(0)}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i, w := range want {
		if d := mwtest.Must(retry.Delay(i+1, opts...)); d != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	// With jitter the delay stays within [d/2, 3d/2].
	for range 100 {
		d := mwtest.Must(retry.Delay(1, retry.WithBackoff(100*time.Millisecond, time.Second), retry.WithJitter(0.5)))
		if d < 50*time.Millisecond || d > 150*time.Millisecond {
			t.Fatalf("jittered delay %v outside [50ms,150ms]", d)
		}
	}
}

func TestInProcessRetriesUntilSuccess(t *testing.T) {
	var attempts []int
	h := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(5), retry.WithBackoff(time.Millisecond, 2*time.Millisecond)))(
		func(_ context.Context, m *messaging.Message) error {
			attempts = append(attempts, m.Attempt)
			if m.Attempt <= 3 {
				return errBoom
			}
			return nil
		})
	if err := h(context.Background(), &messaging.Message{Attempt: 1}); err != nil {
		t.Fatalf("got %v, want success on the 4th attempt", err)
	}
	if len(attempts) != 4 || attempts[3] != 4 {
		t.Fatalf("attempts %v, want [1 2 3 4]", attempts)
	}
}

func TestInProcessGivesUpAfterMax(t *testing.T) {
	calls := 0
	h := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond)))(
		func(context.Context, *messaging.Message) error { calls++; return errBoom })
	err := h(context.Background(), &messaging.Message{Attempt: 1})
	if !messaging.IsPermanent(err) || calls != 3 {
		t.Fatalf("got %v after %d calls, want permanent after 3", err, calls)
	}
}

func TestInProcessWaitHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(3), retry.WithBackoff(time.Hour, time.Hour)))(
		func(context.Context, *messaging.Message) error { cancel(); return errBoom })
	start := time.Now()
	err := h(ctx, &messaging.Message{Attempt: 1})
	if !errors.Is(err, context.Canceled) || messaging.IsPermanent(err) {
		t.Fatalf("got %v, want a non-permanent context.Canceled", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the hour-long backoff was waited for")
	}
}

// TestInProcessCancelledIsNotGivenUp: a handler that fails because its
// subscription is stopping (its ctx ended) leaves the message for
// redelivery, on the last attempt too and with no backoff to wait in.
func TestInProcessCancelledIsNotGivenUp(t *testing.T) {
	for _, max := range []int{1, 5} {
		h := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(max), retry.WithBackoff(0, 0)))
		for range 100 {
			ctx, cancel := context.WithCancel(context.Background())
			calls := 0
			err := h(func(ctx context.Context, _ *messaging.Message) error { calls++; cancel(); return ctx.Err() })(ctx, &messaging.Message{Attempt: 1})
			if messaging.IsPermanent(err) || !errors.Is(err, context.Canceled) || calls != 1 {
				t.Fatalf("max %d: got %v after %d calls, want a non-permanent context.Canceled after 1", max, err, calls)
			}
		}
	}
}

func TestForPicksTheMode(t *testing.T) {
	calls := 0
	h := mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithModeFor(messaging.Capabilities{})))(
		func(context.Context, *messaging.Message) error { calls++; return errBoom })
	if err := h(context.Background(), &messaging.Message{Attempt: 1}); !messaging.IsPermanent(err) || calls != 3 {
		t.Fatalf("no redelivery: %d calls, %v; want 3 in process", calls, err)
	}
	calls = 0
	h = mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithModeFor(messaging.Capabilities{Groups: true, AckDeadline: true})))(
		func(context.Context, *messaging.Message) error { calls++; return errBoom })
	if err := h(context.Background(), &messaging.Message{Attempt: 1}); messaging.IsPermanent(err) || calls != 1 {
		t.Fatalf("redelivering adapter: %d calls, %v; want 1 and a retry", calls, err)
	}
}

func TestOrderChecks(t *testing.T) {
	if err := middleware.Validate(mwtest.Must(timeout.New(time.Second)), mwtest.Must(retry.New(retry.WithInProcess()))); !errors.Is(err, middleware.ErrMisordered) {
		t.Errorf("timeout outside in-process retry: got %v, want ErrMisordered", err)
	}
	if err := middleware.Validate(mwtest.Must(retry.New()), mwtest.Must(retry.New())); !errors.Is(err, middleware.ErrMisordered) {
		t.Errorf("two retry layers: got %v, want ErrMisordered", err)
	}
	if err := middleware.Validate(mwtest.Must(retry.New(retry.WithInProcess())), mwtest.Must(timeout.New(time.Second))); err != nil {
		t.Errorf("timeout inside retry: %v", err)
	}
	if err := middleware.Validate(mwtest.Must(timeout.New(time.Second)), mwtest.Must(retry.New())); err != nil {
		t.Errorf("timeout outside broker-mode retry is per delivery and fine: %v", err)
	}
	// The same check at run time: the message is not lost (not permanent).
	calls := 0
	h := messaging.Chain(func(context.Context, *messaging.Message) error { calls++; return nil },
		mwtest.Must(timeout.New(time.Second)), mwtest.Must(retry.New(retry.WithInProcess())))
	err := h(context.Background(), &messaging.Message{Attempt: 1})
	if !errors.Is(err, middleware.ErrMisordered) || messaging.IsPermanent(err) || calls != 0 {
		t.Fatalf("run time: got %v (permanent %v) after %d calls, want a retryable ErrMisordered before any call", err, messaging.IsPermanent(err), calls)
	}
}

// TestRedeliveryEndToEnd runs on every registered backend: a handler failing
// three times then succeeding runs exactly four times, redelivered by the
// adapter with Attempt counted, and waits the backoff between attempts.
func TestRedeliveryEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "retry")
		group := integration.UniqueName(t, "g")
		const backoff = 50 * time.Millisecond
		var (
			mu       sync.Mutex
			attempts []int
			times    []time.Time
		)
		done := make(chan struct{})
		h := mwtest.Must(retry.New(retry.WithMaxAttempts(5), retry.WithBackoff(backoff, backoff), retry.WithJitter(0), retry.WithModeFor(c.Capabilities())))(
			func(_ context.Context, m *messaging.Message) error {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, m.Attempt)
				times = append(times, time.Now())
				if m.Attempt <= 3 {
					return errBoom
				}
				close(done)
				return nil
			})
		mwtest.Subscribe(t, ctx, c, topic, h, messaging.Group(group))
		mwtest.Publish(t, ctx, c, topic, &messaging.Message{Payload: []byte("x")})
		select {
		case <-done:
		case <-ctx.Done():
			mu.Lock()
			t.Fatalf("no success; attempts so far %v", attempts)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []int{1, 2, 3, 4}; !equal(attempts, want) {
			t.Fatalf("attempts %v, want %v", attempts, want)
		}
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < backoff {
				t.Errorf("attempt %d came %v after the previous, before the %v backoff", i+1, gap, backoff)
			}
		}
	})
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSubscribeOptionsPushPolicyDown(t *testing.T) {
	o, err := messaging.NewSubscribeOptions(1, mwtest.Must(retry.SubscribeOptions(retry.WithMaxAttempts(4), retry.WithBackoff(100*time.Millisecond, 300*time.Millisecond)))...)
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxAttempts != 5 {
		t.Errorf("MaxAttempts %d, want 5 (the policy's 4 and one for an unsettled last attempt)", o.MaxAttempts)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	if fmt.Sprint(o.RedeliveryBackoff) != fmt.Sprint(want) {
		t.Errorf("RedeliveryBackoff %v, want %v (no jitter, capped at max)", o.RedeliveryBackoff, want)
	}
	if got := mwtest.Must(retry.SubscribeOptions(retry.WithInProcess())); got != nil {
		t.Errorf("in-process retry pushed %d options to the broker, want none", len(got))
	}
}

// TestPolicyPushedDownEndToEnd runs on every registered backend: with the
// policy given to both the middleware and Subscribe (SubscribeOptions), a
// handler failing forever runs exactly MaxAttempts times, spaced by the
// backoff, and the broker does not redeliver it afterwards.
func TestPolicyPushedDownEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "pushdown")
		group := integration.UniqueName(t, "g")
		const backoff = 300 * time.Millisecond
		policy := []retry.Option{retry.WithMaxAttempts(3), retry.WithBackoff(backoff, backoff), retry.WithJitter(0), retry.WithModeFor(c.Capabilities())}
		col := integration.NewCollector()
		var (
			mu    sync.Mutex
			times []time.Time
		)
		h := mwtest.Must(retry.New(policy...))(func(_ context.Context, m *messaging.Message) error {
			col.Add(m)
			if m.ID != "poison" {
				return nil
			}
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			return errBoom
		})
		opts := append([]messaging.SubscribeOption{messaging.Group(group)}, mwtest.Must(retry.SubscribeOptions(policy...))...)
		mwtest.Subscribe(t, ctx, c, topic, h, opts...)
		mwtest.Publish(t, ctx, c, topic, &messaging.Message{ID: "poison"})
		if !col.Wait(hn.Timeout, func(c *integration.Collector) bool { return c.Count("poison") >= 3 }) {
			t.Fatalf("poison handled %d times, want 3", col.Count("poison"))
		}
		// A fourth run would come one backoff later: watch for twice that,
		// with markers proving the subscription still delivers.
		watch := time.Now().Add(2 * backoff)
		for i := 0; time.Now().Before(watch) || i < 2; i++ {
			mwtest.Publish(t, ctx, c, topic, &messaging.Message{ID: fmt.Sprintf("marker-%d", i)})
			col.WaitDistinct(t, i+2, hn.Timeout)
		}
		if n := col.Count("poison"); n != 3 {
			t.Fatalf("poison handled %d times, want exactly 3 (MaxAttempts)", n)
		}
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < backoff {
				t.Errorf("attempt %d came %v after the previous, before the %v backoff", i+1, gap, backoff)
			}
		}
	})
}
