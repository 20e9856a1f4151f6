package messaging_test

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory" // registers mem://
)

// A worker that consumes orders and publishes an event for each, stopped
// gracefully (on SIGTERM, say): Shutdown stops taking messages and waits,
// up to its context's end, for the handlers running; they can still
// publish, so no order is handled twice for a refused publish. Close then
// releases the connection.
func ExampleShutdowner() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://shutdown-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	running, workDone := make(chan struct{}), make(chan struct{})
	_, err = client.Subscribe(ctx, "orders", func(ctx context.Context, m *messaging.Message) error {
		close(running)
		<-workDone // the order's work
		return client.Publish(ctx, "invoices", &messaging.Message{Payload: m.Payload})
	}, messaging.Group("billing"))
	if err != nil {
		panic(err)
	}
	if err := messaging.Provision(ctx, client, "invoices", "mailer"); err != nil {
		panic(err)
	}
	if err := client.Publish(ctx, "orders", &messaging.Message{Payload: []byte("order #1")}); err != nil {
		panic(err)
	}
	<-running

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- client.(messaging.Shutdowner).Shutdown(stopCtx) }()
	close(workDone) // the work ends while Shutdown waits for it (or just before)
	if err := <-shut; err != nil {
		fmt.Println("handlers still running at the deadline:", err)
	}
	_, err = client.Subscribe(ctx, "orders", func(context.Context, *messaging.Message) error { return nil })
	fmt.Println("subscribe after Shutdown:", err)

	// The invoice the handler published during the Shutdown is there.
	reader, err := messaging.Open(ctx, "mem://shutdown-example")
	if err != nil {
		panic(err)
	}
	defer reader.Close()
	got := make(chan string, 1)
	_, err = reader.Subscribe(ctx, "invoices", func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Payload)
		return nil
	}, messaging.Group("mailer"))
	if err != nil {
		panic(err)
	}
	fmt.Println("invoice for:", <-got)
	// Output:
	// subscribe after Shutdown: messaging: subscribe: messaging: closed
	// invoice for: order #1
}
