package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/outbox"
)

// TestRunReturnsPromptlyWhenMarkingHangs: Run's context ends while the
// relay marks a published batch and the database does not answer (here: a
// table lock held by another transaction). Marking outlives the context
// so the next holder does not resend, but Run must still return within its
// documented shutdown bound (5s for the database), not after the lease
// TTL (a minute here).
func TestRunReturnsPromptlyWhenMarkingHangs(t *testing.T) {
	// Fetching is done; the DELETE that marks the rows will wait.
	runWithTableLocked(t, "messaging_outbox")
}

// runWithTableLocked runs a relay with one row to forward; as its Publish
// is called, another transaction locks table and Run's context ends. Run
// must return within about 5s of that (its documented bound for the
// database), not when the lock is let go (after 30s at the latest).
func runWithTableLocked(t *testing.T, table string) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	locker, err := e.db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = locker.Rollback() }()
	var cancelled time.Time
	pub := messaging.PublishFunc(func(context.Context, string, ...*messaging.Message) error {
		if cancelled.IsZero() {
			if _, err := locker.Exec("LOCK TABLE " + e.schema + "." + table + " IN EXCLUSIVE MODE"); err != nil {
				t.Error(err)
			}
			cancelled = time.Now()
			cancel()
		}
		return nil
	})
	e.enqueue(t, "hang", true, &messaging.Message{})
	r, err := e.ob.NewRelay(e.db, pub, outbox.WithLeaseTTL(time.Minute), outbox.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		_ = locker.Rollback() // let Run return
		<-done
		t.Fatalf("Run did not return within 30s of its context's end, with table %s locked", table)
	}
	if cancelled.IsZero() {
		t.Fatal("the relay never published")
	}
	if d := time.Since(cancelled); d > 15*time.Second {
		t.Errorf("Run returned %v after its context ended, want about 5s at most", d)
	}
}

// TestBatchInFlightMarkedAfterContextEnds: Run's context ends while the
// broker accepts a batch. Run still records the batch as forwarded before
// it returns (it waits up to 5s for the database to do so), so the next
// relay does not send it again.
func TestBatchInFlightMarkedAfterContextEnds(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := messaging.PublishFunc(func(context.Context, string, ...*messaging.Message) error {
		cancel() // the broker accepts the batch as Run's context ends
		return nil
	})
	e.enqueue(t, "inflight", true, &messaging.Message{}, &messaging.Message{})
	r, err := e.ob.NewRelay(e.db, pub, outbox.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if left := e.msgIDs(t, ""); len(left) != 0 {
		t.Errorf("rows %v left after Run returned; want the accepted batch marked forwarded (deleted)", left)
	}
	if s := r.Stats(); s.Forwarded != 2 || s.Unmarked != 0 {
		t.Errorf("stats %+v; want 2 forwarded, 0 unmarked", s)
	}
}

// TestRunReturnsPromptlyWhenReleasingHangs: Run's context ends and the
// database does not answer the release of the leases (a lock held on the
// lease table by another transaction). Run gives up after its documented
// 5s and returns (the leases expire after the TTL), not when the database
// answers.
func TestRunReturnsPromptlyWhenReleasingHangs(t *testing.T) {
	// Marking only reads the lease table; releasing writes it.
	runWithTableLocked(t, "messaging_outbox_leases")
}

// TestRunTwiceIsAnError: a Relay runs once; a second Run, while the first
// runs or after it returned, fails at once with ErrInvalidOption and
// leaves the first's leases alone.
func TestRunTwiceIsAnError(t *testing.T) {
	e := newEnv(t)
	r, stop := e.startRelay(t, openMemory(t), outbox.WithRelayID("once"))
	e.waitStatus(t, 10*time.Second, "the relay holds its leases", func(s outbox.Status) bool {
		return len(s.Relays) == 1 && s.Relays[0].Partitions == 16
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("second Run while the first runs: %v, want ErrInvalidOption", err)
	}
	if st, err := e.ob.Status(context.Background(), e.db); err != nil || len(st.Relays) != 1 || st.Relays[0].Partitions != 16 {
		t.Errorf("after the second Run: status %+v (%v); want the first relay still holding 16 leases", st, err)
	}
	stop()
	if err := r.Run(ctx); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Run after the first returned: %v, want ErrInvalidOption", err)
	}
}
