package circuitbreaker_test

import (
	"context"
	"errors"
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
