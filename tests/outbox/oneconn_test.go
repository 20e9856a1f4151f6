package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/outbox"
)

// TestRelayWithOneConnection: a database handle limited to one open
// connection after NewRelay. Listening would hold that connection and the
// relay's queries would wait for it forever (nothing forwarded, nothing
// logged); Run must poll instead and forward.
func TestRelayWithOneConnection(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "oneconn", col.Handler())
	one := &env{db: brokertest.OpenPostgres(t), ob: e.ob, schema: e.schema}
	r, err := one.ob.NewRelay(one.db, c)
	if err != nil {
		t.Fatal(err)
	}
	one.db.SetMaxOpenConns(1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	ids := e.enqueue(t, "oneconn", true, &messaging.Message{}, &messaging.Message{})
	col.WaitDistinct(t, len(ids), 10*time.Second)
	col.Report(t, ids)
}

// TestMarkingLeavesSynchronousCommitOn: the marking statement turns
// synchronous_commit off for its own transaction only; the connection goes
// back to the pool with the server's setting, so the application's own
// transactions on the same handle (Enqueue's among them) still wait for
// the WAL flush.
func TestMarkingLeavesSynchronousCommitOn(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "synccommit", col.Handler())
	one := &env{db: brokertest.OpenPostgres(t), ob: e.ob, schema: e.schema}
	one.db.SetMaxOpenConns(1) // the relay's marking runs on the connection checked below
	var before string
	if err := one.db.QueryRow("SHOW synchronous_commit").Scan(&before); err != nil {
		t.Fatal(err)
	}
	_, stop := one.startRelay(t, c, outbox.WithPolling(), outbox.WithPollInterval(10*time.Millisecond))
	ids := e.enqueue(t, "synccommit", true, &messaging.Message{})
	col.WaitDistinct(t, 1, 10*time.Second)
	col.Report(t, ids)
	e.waitStatus(t, 10*time.Second, "the row marked", func(s outbox.Status) bool { return s.Backlog == 0 })
	stop()
	var after string
	if err := one.db.QueryRow("SHOW synchronous_commit").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("synchronous_commit on the relay's connection: %q after marking, %q before", after, before)
	}
}
