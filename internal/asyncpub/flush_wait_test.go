package asyncpub

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/msgkit/messaging"
)

// TestTrackerFlushWaitsForWaitingBegin: a message whose Begin waits for
// room when Flush is called is pending for Flush: Flush returns once it
// has ended, not when the message before it ends and lets it in.
func TestTrackerFlushWaitsForWaitingBegin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTracker(make(chan struct{}, 1))
		ctx := context.Background()
		if err := tr.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		began := make(chan error, 1)
		go func() { began <- tr.Begin(ctx) }()
		synctest.Wait() // the second Begin waits for room
		flushed := make(chan error, 1)
		go func() { flushed <- tr.Flush(ctx) }()
		synctest.Wait()
		tr.End(nil, nil, nil) // lets the second message in
		synctest.Wait()
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned (%v) with the message that waited for room pending", err)
		default:
		}
		if err := <-began; err != nil {
			t.Fatal(err)
		}
		tr.End(nil, nil, nil)
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
	})
}

// TestCheckFlushWaitsForFailedWaiter: a message that waited for room and
// fails (its ctx ended) is pending for Flush until its callback returned.
func TestCheckFlushWaitsForFailedWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTracker(make(chan struct{}, 1))
		if err := tr.Begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		var got []error
		go Check(ctx, tr, "t", &messaging.Message{}, noCheck, func(_ *messaging.Message, err error) {
			got = append(got, err)
			<-release
		})
		synctest.Wait() // Check waits for room
		flushed := make(chan error, 1)
		go func() { flushed <- tr.Flush(context.Background()) }()
		cancel()
		synctest.Wait() // the callback runs, holding on
		tr.End(nil, nil, nil)
		synctest.Wait()
		select {
		case err := <-flushed:
			close(release)
			t.Fatalf("Flush returned (%v) while the failed message's callback runs", err)
		default:
		}
		close(release)
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !errors.Is(got[0], context.Canceled) {
			t.Fatalf("results %v, want one wrapping context.Canceled", got)
		}
	})
}
