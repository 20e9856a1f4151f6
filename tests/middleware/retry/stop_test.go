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

// TestTimeoutOutsideBrokerModeGivesUp: on mem://, without a subscribe
// MaxAttempts, a handler that outlives the deadline of a timeout layer
// outside a broker-mode retry (an order Validate accepts) runs MaxAttempts
// times, spaced by the backoff, and is then given up: the deadline is a
// failed attempt, not the subscription's stop.
func TestTimeoutOutsideBrokerModeGivesUp(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, time.Minute)
	topic := mwtest.Topic(t, c, "timeout-outside")
	const backoff = 50 * time.Millisecond
	type run struct {
		attempt int
		err     error
		at      time.Time
	}
	var (
		mu   sync.Mutex
		runs []run
	)
	third := make(chan struct{})
	record := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			err := next(ctx, m)
			if m.ID == "poison" {
				mu.Lock()
				runs = append(runs, run{m.Attempt, err, time.Now()})
				if len(runs) == 3 {
					close(third)
				}
				mu.Unlock()
			}
			return err
		}
	}
	col := integration.NewCollector()
	h := mwtest.Must(middleware.Chain(func(ctx context.Context, m *messaging.Message) error {
		col.Add(m)
		if m.ID != "poison" {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}, record, mwtest.Must(timeout.New(20*time.Millisecond)),
		mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(backoff, backoff), retry.WithJitter(0)))))
	mwtest.Subscribe(t, ctx, c, topic, h, messaging.Group(integration.UniqueName(t, "g")))
	mwtest.Publish(t, ctx, c, topic, &messaging.Message{ID: "poison"})
	select {
	case <-third:
	case <-ctx.Done():
		t.Fatal("the third attempt never came")
	}
	// A fourth run would come at once or one backoff later: watch for four
	// backoffs (time itself is the subject), with markers proving that the
	// subscription still delivers.
	watch := time.Now().Add(4 * backoff)
	for i := 0; time.Now().Before(watch) || i < 2; i++ {
		mwtest.Publish(t, ctx, c, topic, &messaging.Message{ID: fmt.Sprintf("marker-%d", i)})
		col.WaitDistinct(t, i+2, 10*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range runs[:2] {
		if d, ok := messaging.RetryDelay(r.err); !ok || d != backoff || messaging.IsPermanent(r.err) {
			t.Errorf("attempt %d: got %v (delay %v, set %v), want a retryable error with the %v backoff", r.attempt, r.err, d, ok, backoff)
		}
		if gap := runs[i+1].at.Sub(r.at); gap < backoff {
			t.Errorf("attempt %d came %v after the previous, before the %v backoff", runs[i+1].attempt, gap, backoff)
		}
	}
	if r := runs[2]; r.attempt != 3 || !messaging.IsPermanent(r.err) || !errors.Is(r.err, timeout.ErrTimeout) {
		t.Errorf("attempt %d: got %v, want attempt 3 given up (permanent, wrapping ErrTimeout)", r.attempt, r.err)
	}
	if len(runs) != 3 {
		t.Errorf("poison ran %d times, want 3 (MaxAttempts)", len(runs))
	}
}

// TestInterruptedIsRedelivered: a handler that the subscription's stop
// interrupts at its last attempt is redelivered, whatever the retry mode
// and with a timeout layer outside a broker-mode retry.
func TestInterruptedIsRedelivered(t *testing.T) {
	for name, mws := range map[string][]messaging.Middleware{
		"broker":         {mwtest.Must(retry.New(retry.WithMaxAttempts(1)))},
		"broker+timeout": {mwtest.Must(timeout.New(time.Hour)), mwtest.Must(retry.New(retry.WithMaxAttempts(1)))},
		"in-process":     {mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(2)))},
	} {
		t.Run(name, func(t *testing.T) {
			mwtest.Interrupt(t, func(next messaging.Handler) messaging.Handler { return messaging.Chain(next, mws...) })
		})
	}
}
