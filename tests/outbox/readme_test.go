package outbox_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/inbox"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/outbox"
)

// settledClient is a Client whose subscriptions report each message once
// its handler (here the inbox's transaction) has returned.
type settledClient struct {
	messaging.Client
	settled chan *messaging.Message
}

func (c settledClient) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	return c.Client.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		err := h(ctx, m)
		c.settled <- m
		return err
	}, opts...)
}

// TestReadmeOutboxInbox runs the README's outbox and inbox snippet as it
// is written (errors it ignores show as the message not handled): the
// committed message is relayed to the broker and its effect committed
// once, and a duplicate delivery of it commits nothing more.
func TestReadmeOutboxInbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db := brokertest.OpenPostgres(t)
	app := brokertest.PostgresSchema(t, db)
	update := "UPDATE " + app + ".totals SET n = n + 1"
	mem, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	client := settledClient{Client: mem, settled: make(chan *messaging.Message, 2)}
	orderID, event := "order-42", []byte(`{"total":10}`)

	ob, _ := outbox.New(outbox.PostgreSQL(app)) // ob.Migrate(ctx, db), or run outbox/postgres.sql
	if err := ob.Migrate(ctx, db); err != nil { // creates the schema
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+app+".totals (n int NOT NULL); INSERT INTO "+app+".totals VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	tx, _ := db.BeginTx(ctx, nil)
	// ... INSERT the order ...
	ob.Enqueue(ctx, tx, "orders", &messaging.Message{Key: orderID, Payload: event})
	tx.Commit()                         // rolled back: nothing is ever published
	relay, _ := ob.NewRelay(db, client) // any number of relays, in any processes
	go relay.Run(ctx)
	t.Cleanup(cancel) // ends the relay and the subscription

	in, _ := inbox.New(db, inbox.PostgreSQL(app), inbox.WithGroup("read-model")) // in.Migrate(ctx)
	if err := in.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	client.Subscribe(ctx, "orders", in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		_, err := tx.ExecContext(ctx, update) // committed together with the inbox record, or not at all
		return err
	}), messaging.Group("read-model"))

	var m *messaging.Message
	select {
	case m = <-client.settled:
	case <-ctx.Done():
		t.Fatal("the enqueued message was not relayed and handled")
	}
	if m.Key != orderID || string(m.Payload) != string(event) {
		t.Fatalf("handled %+v, want key %s payload %s", m, orderID, event)
	}
	// A redelivery of the same message (same ID) commits no effect.
	if err := mem.Publish(ctx, "orders", &messaging.Message{ID: m.ID, Key: m.Key, Payload: m.Payload}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-client.settled:
	case <-ctx.Done():
		t.Fatal("the duplicate was not handled")
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n FROM "+app+".totals").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the effect was committed %d times, want 1", n)
	}
}
