package pubsub_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/patterns/pubsub"
)

type OrderPlaced struct {
	OrderID string `json:"order_id"`
}

// An event bus: publish a typed event once; every subscriber (each its own
// consumer group) gets it.
func Example() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://pubsub-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	got := make(chan string)
	for _, name := range []string{"inventory", "email"} {
		sub, err := pubsub.Subscribe(ctx, client, "orders.placed", name, func(_ context.Context, e OrderPlaced, _ *messaging.Message) error {
			got <- name + " got " + e.OrderID
			return nil
		})
		if err != nil {
			panic(err)
		}
		defer sub.Close()
	}
	pub, err := pubsub.NewPublisher[OrderPlaced](client, "orders.placed")
	if err != nil {
		panic(err)
	}
	if _, err := pub.Publish(ctx, "order-1", OrderPlaced{OrderID: "order-1"}); err != nil {
		panic(err)
	}
	lines := []string{<-got, <-got}
	slices.Sort(lines)
	fmt.Println(lines[0])
	fmt.Println(lines[1])
	// Output:
	// email got order-1
	// inventory got order-1
}
