package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/outbox"
)

// TestCleanupDoesNotHoldUpForwarding: a large retention backlog (200,000
// forwarded rows past their retention, as after enabling retention or a
// long stop) is deleted in chunks; the relay must go on renewing its
// leases and forwarding meanwhile, not only once every expired row is
// gone. The message waiting when the relay starts must be forwarded while
// most of the expired rows are still there. The rows left are counted in
// the relay's own Publish call, which holds up its loop, cleanup included:
// the count is what was left when the relay forwarded, however slowly the
// machine runs (counted by the subscriber instead, after a delivery a
// loaded machine delayed, it was once 0).
func TestCleanupDoesNotHoldUpForwarding(t *testing.T) {
	e := newEnv(t)
	if _, err := e.db.Exec(`INSERT INTO ` + e.schema + `.messaging_outbox (msg_id, topic, msg_time, forwarded_at)
		SELECT 'old-' || i, 'old', now(), now() - interval '1 day' FROM generate_series(1, 200000) i`); err != nil {
		t.Fatal(err)
	}
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "fresh", col.Handler())
	ids := e.enqueue(t, "fresh", true, &messaging.Message{})
	left := make(chan int64, 1)
	pub := countingPublisher{Publisher: c, count: func(context.Context) {
		// Not with the Publish's context: its deadline is the relay's
		// lease (0.6s here), which a slow count must not fail.
		var n int64
		if err := e.db.QueryRowContext(t.Context(), `SELECT count(*) FROM `+e.schema+`.messaging_outbox WHERE topic = 'old'`).Scan(&n); err != nil {
			t.Error(err)
		}
		select {
		case left <- n:
		default:
		}
	}}
	e.startRelay(t, pub, outbox.WithKeepForwarded(time.Hour), outbox.WithLeaseTTL(600*time.Millisecond))
	col.WaitDistinct(t, len(ids), 60*time.Second)
	col.Report(t, ids)
	n := <-left
	if n < 1000 {
		t.Errorf("message %s forwarded only after the cleanup deleted all but %d of 200000 expired rows", ids[0], n)
	}
	t.Logf("forwarded with %d expired rows left", n)
}

// countingPublisher calls count in each Publish, before publishing.
type countingPublisher struct {
	messaging.Publisher
	count func(context.Context)
}

func (p countingPublisher) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	p.count(ctx)
	return p.Publisher.Publish(ctx, topic, msgs...)
}

// TestCleanupKeepsRowsWithinRetention: the relay's cleanup deletes the rows
// forwarded longer ago than the retention, and only those: rows forwarded
// a moment ago, with a retention of an hour, stay.
func TestCleanupKeepsRowsWithinRetention(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "kept", col.Handler())
	e.startRelay(t, c, outbox.WithKeepForwarded(time.Hour), outbox.WithCleanupInterval(10*time.Millisecond))
	ids := e.enqueue(t, "kept", true, &messaging.Message{}, &messaging.Message{})
	col.WaitDistinct(t, len(ids), 10*time.Second)
	e.waitStatus(t, 10*time.Second, "2 rows retained", func(s outbox.Status) bool { return s.Backlog == 0 && s.Retained == 2 })
	// A row past its retention, inserted now: once it is gone, a cleanup
	// ran after the two were forwarded.
	if _, err := e.db.Exec(`INSERT INTO ` + e.schema + `.messaging_outbox (msg_id, topic, msg_time, forwarded_at)
		VALUES ('expired', 'kept', now(), now() - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	st := e.waitStatus(t, 10*time.Second, "the expired row deleted", func(s outbox.Status) bool { return s.Retained < 3 })
	if got := e.msgIDs(t, "ORDER BY seq"); st.Retained != 2 || len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] {
		t.Fatalf("after a cleanup: retained %d, rows %v; want the 2 forwarded within the retention, %v", st.Retained, got, ids)
	}
}

// TestRowsKeptStayWithoutRetention: only relays with WithKeepForwarded
// delete kept rows; after retention was turned off, the rows kept until
// then stay (until deleted by hand) while the relay forwards.
func TestRowsKeptStayWithoutRetention(t *testing.T) {
	e := newEnv(t)
	if _, err := e.db.Exec(`INSERT INTO ` + e.schema + `.messaging_outbox (msg_id, topic, msg_time, forwarded_at)
		VALUES ('kept-1', 'kept', now(), now() - interval '1 day')`); err != nil {
		t.Fatal(err)
	}
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "fresh", col.Handler())
	_, stop := e.startRelay(t, c, outbox.WithCleanupInterval(time.Millisecond))
	ids := e.enqueue(t, "fresh", true, &messaging.Message{}) // forwarded after the relay's first cleanup check
	col.WaitDistinct(t, 1, 10*time.Second)
	col.Report(t, ids)
	stop()
	if got := e.msgIDs(t, "WHERE forwarded_at IS NOT NULL"); len(got) != 1 || got[0] != "kept-1" {
		t.Fatalf("kept rows %v after a relay without retention ran, want [kept-1]", got)
	}
}
