package messaging_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory" // registers mem://
)

// Open a broker by URL, subscribe a consumer group, publish, and receive.
func Example() {
	ctx := context.Background()
	// mem://NAME is an in-process broker shared by the clients opened with
	// that name; nats://, redis://, kafka:// and amqp:// URLs work the same.
	client, err := messaging.Open(ctx, "mem://example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	got := make(chan *messaging.Message)
	sub, err := client.Subscribe(ctx, "orders", func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil // acknowledges; an error would redeliver with Attempt+1
	}, messaging.Group("billing"))
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	// Publish returns once the broker has accepted the message.
	err = client.Publish(ctx, "orders", &messaging.Message{Key: "customer-42", Payload: []byte("order #1")})
	if err != nil {
		panic(err)
	}
	m := <-got
	fmt.Printf("%s: %s (key %s, attempt %d)\n", m.Topic, m.Payload, m.Key, m.Attempt)
	// Output: orders: order #1 (key customer-42, attempt 1)
}

// The README's quick start, on the in-process broker: a work queue of
// eight concurrent handlers in group billing, and a Publish that returns
// once the broker accepted the message.
func Example_quickStart() {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	body := []byte(`{"order":1}`)
	processed := make(chan string, 1)
	process := func(payload []byte) error {
		processed <- string(payload)
		return nil
	}

	client, err := messaging.Open(ctx, "mem://quick-start", // or nats://, redis://, kafka://, amqp://
		messaging.WithLogger(logger)) // optional: where the adapter logs what it cannot return
	if err != nil {
		panic(err)
	}
	defer client.Close()

	// Work queue: subscriptions in the same group share the messages.
	sub, err := client.Subscribe(ctx, "orders", func(ctx context.Context, m *messaging.Message) error {
		return process(m.Payload) // nil acks; an error redelivers with m.Attempt+1
	}, messaging.Group("billing"), messaging.Concurrency(8))
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	// Returns once the broker has durably accepted the message.
	err = client.Publish(ctx, "orders", &messaging.Message{Key: "customer-42", Payload: body})
	if err != nil {
		panic(err)
	}
	fmt.Println("processed", <-processed)
	// Output: processed {"order":1}
}

// Subscriptions in the same group share the messages; each group gets
// every message.
func ExampleGroup() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://example-group")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	type delivery struct{ group, payload string }
	got := make(chan delivery)
	for _, group := range []string{"billing", "shipping"} {
		h := func(_ context.Context, m *messaging.Message) error {
			got <- delivery{group, string(m.Payload)}
			return nil
		}
		// Two members in each group: each message goes to one of them.
		for range 2 {
			sub, err := client.Subscribe(ctx, "orders", h, messaging.Group(group))
			if err != nil {
				panic(err)
			}
			defer sub.Close()
		}
	}
	if err := client.Publish(ctx, "orders", &messaging.Message{Payload: []byte("order #1")}); err != nil {
		panic(err)
	}
	counts := map[string]int{}
	for range 2 {
		d := <-got
		counts[d.group]++
	}
	fmt.Println("billing:", counts["billing"], "shipping:", counts["shipping"])
	// Output: billing: 1 shipping: 1
}

// Log-backed adapters implement Stream: read a topic from a position
// without disturbing any group.
func ExampleStream() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://example-stream")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	for _, p := range []string{"one", "two", "three"} {
		if err := client.Publish(ctx, "events", &messaging.Message{Payload: []byte(p)}); err != nil {
			panic(err)
		}
	}

	stream, ok := client.(messaging.Stream)
	if !ok || !client.Capabilities().Replay {
		panic("this adapter cannot replay")
	}
	got := make(chan *messaging.Message)
	sub, err := stream.Read(ctx, "events", messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	first := <-got
	fmt.Println("replayed:", string(first.Payload), string((<-got).Payload), string((<-got).Payload))

	// Resume after a checkpoint: everything after the first message.
	sub2, err := stream.Read(ctx, "events", messaging.AfterOffset(first.Offset), func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		panic(err)
	}
	defer sub2.Close()
	fmt.Println("after the first:", string((<-got).Payload), string((<-got).Payload))
	// Output:
	// replayed: one two three
	// after the first: two three
}
