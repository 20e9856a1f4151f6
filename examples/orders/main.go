// Orders: the transactional outbox and inbox on PostgreSQL. An order
// service inserts each order and its "order placed" event in one database
// transaction (a rolled-back order publishes nothing); a relay forwards the
// events to the broker; a consumer keeps a read model (totals per customer)
// through the inbox, so a duplicated event changes nothing.
//
//	go run ./examples/orders [-db postgres://...] [-url nats://127.0.0.1:4222]
//
// -db defaults to $MESSAGING_POSTGRES_URL, -url to $MESSAGING_URL, else
// mem:// (the in-process broker). Everything it creates (a schema and a
// topic with a random suffix) is dropped at the end.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/inbox"
	"github.com/msgkit/messaging/outbox"

	// Adapters register their URL schemes.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

func main() {
	dbURL := flag.String("db", os.Getenv("MESSAGING_POSTGRES_URL"), "PostgreSQL URL (default $MESSAGING_POSTGRES_URL)")
	def := os.Getenv("MESSAGING_URL")
	if def == "" {
		def = "mem://"
	}
	brokerURL := flag.String("url", def, "broker URL (default $MESSAGING_URL, else mem://)")
	flag.Parse()
	if *dbURL == "" {
		fmt.Fprintln(os.Stderr, "orders: set -db or MESSAGING_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *dbURL, *brokerURL); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// OrderPlaced is the event the order service publishes.
type OrderPlaced struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents int64  `json:"amount_cents"`
}

var orders = []OrderPlaced{
	{"o-1", "ada", 1200}, {"o-2", "bob", 500}, {"o-3", "ada", 300},
	{"o-4", "cy", 4200}, {"o-5", "bob", 250},
}

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// run is the whole program; the test calls it.
func run(ctx context.Context, out io.Writer, dbURL, brokerURL string) (err error) {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	client, err := messaging.Open(ctx, brokerURL)
	if err != nil {
		return err
	}
	defer client.Close()

	sfx := suffix()
	schema, topic := "orders_example_"+sfx, "orders-placed-"+sfx
	defer func() {
		_, derr := db.ExecContext(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		if d, ok := client.(messaging.TopicDeleter); ok {
			derr = errors.Join(derr, d.DeleteTopic(context.WithoutCancel(ctx), topic))
		}
		err = errors.Join(err, derr)
	}()

	// Schema: the outbox, the inbox, the service's table and the read model.
	ob, err := outbox.New(outbox.PostgreSQL(schema))
	if err != nil {
		return err
	}
	if err := ob.Migrate(ctx, db); err != nil {
		return err
	}
	handled, dropped := make(chan struct{}, 16), make(chan struct{}, 16)
	in, err := inbox.New(db, inbox.PostgreSQL(schema), inbox.WithOnDuplicate(func(context.Context, *messaging.Message) {
		dropped <- struct{}{}
	}))
	if err != nil {
		return err
	}
	if err := in.Migrate(ctx); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `
		CREATE TABLE `+schema+`.orders (id text PRIMARY KEY, customer text NOT NULL, amount_cents bigint NOT NULL);
		CREATE TABLE `+schema+`.customer_totals (customer text PRIMARY KEY, orders int NOT NULL, amount_cents bigint NOT NULL)`); err != nil {
		return err
	}

	// The consumer: the read model, updated in the inbox's transaction.
	readModel := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		var ev OrderPlaced
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			return messaging.Permanent(err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+schema+`.customer_totals VALUES ($1, 1, $2)
			ON CONFLICT (customer) DO UPDATE SET orders = customer_totals.orders + 1,
			amount_cents = customer_totals.amount_cents + EXCLUDED.amount_cents`, ev.Customer, ev.AmountCents)
		return err
	})
	sub, err := client.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		err := readModel(ctx, m)
		if err == nil {
			handled <- struct{}{} // committed (or dropped as a duplicate)
		}
		return err
	}, messaging.Group("read-model"))
	if err != nil {
		return err
	}
	defer sub.Close()

	// The relay: outbox rows to the broker.
	relay, err := ob.NewRelay(db, client, outbox.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() { stopRelay(); err = errors.Join(err, <-relayDone) }()

	// The order service: the order and its event commit together.
	place := func(o OrderPlaced, fail bool) (*messaging.Message, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+schema+".orders VALUES ($1, $2, $3)", o.OrderID, o.Customer, o.AmountCents); err != nil {
			return nil, err
		}
		body, _ := json.Marshal(o)
		ev := &messaging.Message{Key: o.Customer, Payload: body, Header: messaging.Header{"type": "OrderPlaced"}}
		if err := ob.Enqueue(ctx, tx, topic, ev); err != nil {
			return nil, err
		}
		if fail {
			return nil, errors.New("payment declined") // rolls back the order and its event
		}
		return ev, tx.Commit()
	}
	var first *messaging.Message
	for i, o := range orders {
		ev, err := place(o, false)
		if err != nil {
			return err
		}
		if i == 0 {
			first = ev
		}
	}
	if _, err := place(OrderPlaced{"o-6", "dan", 9900}, true); err != nil {
		fmt.Fprintf(out, "order o-6 rolled back (%v): no event\n", err)
	}
	for range len(orders) {
		select {
		case <-handled:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the read model: %w", ctx.Err())
		}
	}
	// A duplicate, as a broker redelivery or a relay crash makes one: the
	// same event, with the same ID, published again. The inbox drops it;
	// JetStream drops it earlier, at the broker, by its ID (Nats-Msg-Id).
	if err := client.Publish(ctx, topic, first.Clone()); err != nil {
		return err
	}
	select {
	case <-dropped:
	case <-time.After(2 * time.Second): // nothing to wait on when the broker dropped it
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Fprintf(out, "%d orders placed, %d events forwarded, 1 duplicate published\n", len(orders), len(orders))
	rows, err := db.QueryContext(ctx, "SELECT customer, orders, amount_cents FROM "+schema+".customer_totals ORDER BY customer")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var n, cents int64
		if err := rows.Scan(&c, &n, &cents); err != nil {
			return err
		}
		fmt.Fprintf(out, "%-4s %d orders %6.2f\n", c, n, float64(cents)/100)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// The relay deletes a row once the broker accepted it, which can be a
	// moment after the consumer saw it.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := ob.Status(ctx, db)
		if err != nil {
			return err
		}
		if st.Backlog == 0 {
			fmt.Fprintln(out, "outbox backlog 0")
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("outbox backlog %d: %w", st.Backlog, ctx.Err())
		}
	}
}
