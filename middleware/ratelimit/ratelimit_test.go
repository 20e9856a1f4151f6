package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/ratelimit"
)

func TestLimitsRate(t *testing.T) {
	h := mwtest.Must(ratelimit.New(rate.Every(20*time.Millisecond), 1))(func(context.Context, *messaging.Message) error { return nil })
	start := time.Now()
	for range 6 {
		if err := h(context.Background(), &messaging.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	// Time is the subject: 6 runs at 50/s with burst 1 take at least 100ms.
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("6 runs took %v, want >= 100ms", el)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	h := mwtest.Must(ratelimit.New(rate.Every(time.Hour), 1))(func(context.Context, *messaging.Message) error { return nil })
	_ = h(context.Background(), &messaging.Message{}) // takes the burst
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := make(chan error, 1)
	go func() { res <- h(ctx, &messaging.Message{}) }()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) || messaging.IsPermanent(err) {
			t.Fatalf("got %v, want a retryable context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait for the next token ignored the ended context: still waiting after 10s")
	}
}

// TestInstanceSharesBudget: the handlers one middleware instance wraps
// share its budget: once one has taken the burst, another must wait too
// (here longer than its context allows, so it fails at once).
func TestInstanceSharesBudget(t *testing.T) {
	mw := mwtest.Must(ratelimit.New(rate.Every(time.Hour), 1))
	ran := 0
	next := func(context.Context, *messaging.Message) error { ran++; return nil }
	h1, h2 := mw(next), mw(next)
	if err := h1(context.Background(), &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h2(ctx, &messaging.Message{}); err == nil || ran != 1 {
		t.Fatalf("second handler: %v after %d runs, want an error and 1 run: the budget of 1 an hour is spent", err, ran)
	}
}
