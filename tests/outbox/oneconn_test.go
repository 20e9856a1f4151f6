package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
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
