package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestLocalRedeliveriesKeepBatchSize: where the engine redelivers in
// process (no broker attempts, no native delay), redeliveries that become
// ready while a batch is filling join it only up to BatchSize; the rest
// wait for the next batch. Here a and b fail with a short RetryAfter; c,
// published meanwhile, starts the next batch, and a and b become ready
// while it waits for more (BatchWait is long): that batch is c and a, the
// one after it b.
func TestLocalRedeliveriesKeepBatchSize(t *testing.T) {
	f := &lifecycleFake{in: make(chan *messaging.Message, 4)}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	f.in <- &messaging.Message{ID: "b", Attempt: 1}
	c := New(f, quietOptions())
	batches := make(chan []string, 8)
	first := true
	sub, err := c.SubscribeBatch(t.Context(), "t", func(_ context.Context, ms []*messaging.Message) []error {
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		batches <- got
		if !first {
			return nil
		}
		first = false
		f.in <- &messaging.Message{ID: "c", Attempt: 1} // the next batch's first
		fail := messaging.RetryAfter(errors.New("later"), 100*time.Millisecond)
		return []error{fail, fail}
	}, messaging.BatchSize(2), messaging.BatchWait(2*time.Second), messaging.MaxAttempts(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	seen := 0
	for seen < 5 { // a, b; then c, a; then b
		select {
		case got := <-batches:
			if len(got) > 2 {
				t.Fatalf("a batch of %d messages %v, want at most BatchSize 2", len(got), got)
			}
			seen += len(got)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d messages handled within 10s, want 5", seen)
		}
	}
}
