package memory_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestReleaseDoesNotCountAttempt: a message fetched and released unhandled
// when its subscription stops (queued behind a handler that the stop
// interrupts) comes back with Attempt 1: the memory broker gives the
// attempt back, as driver.Release asks where the broker allows; the
// interrupted one counts its attempt, as after a failure.
func TestReleaseDoesNotCountAttempt(t *testing.T) {
	const topic = "release-attempt"
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	first := &messaging.Message{ID: "handled", Key: "k", Payload: []byte("1")}
	queued := &messaging.Message{ID: "queued", Key: "k", Payload: []byte("2")} // same key: waits behind first
	if err := c.Publish(t.Context(), topic, first, queued); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group("g"), messaging.Concurrency(1), messaging.Prefetch(8))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never got a message")
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	got := make(chan *messaging.Message, 2)
	next, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Close() })
	attempts := map[string]int{}
	for range 2 {
		select {
		case m := <-got:
			attempts[m.ID] = m.Attempt
		case <-time.After(10 * time.Second):
			t.Fatalf("after the stop, only %v came back", attempts)
		}
	}
	if want := map[string]int{"handled": 2, "queued": 1}; !maps.Equal(attempts, want) {
		t.Errorf("attempts after the stop: %v, want %v (a released message keeps its attempt)", attempts, want)
	}
}
