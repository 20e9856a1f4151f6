package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/outbox"
)

// TestCleanupDoesNotHoldUpForwarding: a large retention backlog (200,000
// forwarded rows past their retention, as after enabling retention or a
// long stop) is deleted in chunks; the relay must go on renewing its
// leases and forwarding meanwhile, not only once every expired row is
// gone. The message waiting when the relay starts must be delivered while
// most of the expired rows are still there.
func TestCleanupDoesNotHoldUpForwarding(t *testing.T) {
	e := newEnv(t)
	if _, err := e.db.Exec(`INSERT INTO ` + e.schema + `.messaging_outbox (msg_id, topic, msg_time, forwarded_at)
		SELECT 'old-' || i, 'old', now(), now() - interval '1 day' FROM generate_series(1, 200000) i`); err != nil {
		t.Fatal(err)
	}
	c := openMemory(t)
	retained := make(chan int64, 1)
	subscribe(t, c, "fresh", func(ctx context.Context, m *messaging.Message) error {
		var n int64
		if err := e.db.QueryRowContext(ctx, `SELECT count(*) FROM `+e.schema+`.messaging_outbox WHERE topic = 'old'`).Scan(&n); err != nil {
			t.Error(err)
		}
		select {
		case retained <- n:
		default:
		}
		return nil
	})
	ids := e.enqueue(t, "fresh", true, &messaging.Message{})
	e.startRelay(t, c, outbox.WithKeepForwarded(time.Hour), outbox.WithLeaseTTL(600*time.Millisecond))
	select {
	case n := <-retained:
		if n < 1000 {
			t.Errorf("message %s delivered only after the cleanup deleted all but %d of 200000 expired rows", ids[0], n)
		}
		t.Logf("delivered with %d expired rows left", n)
	case <-time.After(60 * time.Second):
		t.Fatal("not delivered within 60s")
	}
}
