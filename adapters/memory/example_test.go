package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// Clients opened with the same mem:// name share one in-process broker, so
// a publisher and a consumer opened separately talk to each other. Messages
// with the same Key are handled in publish order.
func Example() {
	ctx := context.Background()
	publisher, err := messaging.Open(ctx, "mem://example-shared")
	if err != nil {
		panic(err)
	}
	defer publisher.Close()
	consumer, err := messaging.Open(ctx, "mem://example-shared")
	if err != nil {
		panic(err)
	}
	defer consumer.Close()

	got := make(chan *messaging.Message)
	sub, err := consumer.Subscribe(ctx, "orders", func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}, messaging.Group("billing"))
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	for _, p := range []string{"order #1", "order #2"} {
		err := publisher.Publish(ctx, "orders", &messaging.Message{Key: "customer-42", Payload: []byte(p)})
		if err != nil {
			panic(err)
		}
	}
	for range 2 {
		m := <-got
		fmt.Printf("%s: %s\n", m.Group, m.Payload)
	}
	// Output:
	// billing: order #1
	// billing: order #2
}

// New gives a test a private broker of its own, without a URL; options
// configure it, here a smaller limit on a message's size.
func ExampleNew() {
	ctx := context.Background()
	client, err := memory.New(memory.WithMaxMessageSize(1024))
	if err != nil {
		panic(err)
	}
	defer client.Close()

	err = client.Publish(ctx, "images", &messaging.Message{Payload: make([]byte, 2048)})
	fmt.Println("2 KiB:", errors.Is(err, messaging.ErrMessageTooLarge))
	err = client.Publish(ctx, "images", &messaging.Message{Payload: make([]byte, 512)})
	fmt.Println("512 B:", err)
	// Output:
	// 2 KiB: true
	// 512 B: <nil>
}

// Clients of one Broker see the same topics. With WithMaxLen a topic keeps
// only its newest messages: a read from the start begins at the oldest one
// kept. Offset is a message's decimal position in the topic's log, from 0.
func ExampleNewBroker() {
	ctx := context.Background()
	broker, err := memory.NewBroker(memory.WithMaxLen(2))
	if err != nil {
		panic(err)
	}
	publisher, err := broker.NewClient()
	if err != nil {
		panic(err)
	}
	defer publisher.Close()
	reader, err := broker.NewClient()
	if err != nil {
		panic(err)
	}
	defer reader.Close()

	for _, p := range []string{"one", "two", "three"} {
		if err := publisher.Publish(ctx, "events", &messaging.Message{Payload: []byte(p)}); err != nil {
			panic(err)
		}
	}
	got := make(chan *messaging.Message)
	sub, err := reader.Read(ctx, "events", messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	for range 2 {
		m := <-got
		fmt.Println(m.Offset, string(m.Payload))
	}
	// Output:
	// 1 two
	// 2 three
}

// Inspect reports a topic's state from the broker's own: here three
// messages wait for group billing, which has no consumer yet.
func ExampleClient_Inspect() {
	ctx := context.Background()
	client, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer client.Close()
	if err := client.Provision(ctx, "orders", "billing"); err != nil {
		panic(err)
	}
	for range 3 {
		if err := client.Publish(ctx, "orders", &messaging.Message{Payload: []byte("order")}); err != nil {
			panic(err)
		}
	}

	st, err := client.Inspect(ctx, "orders")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %v messages, offsets %s to %s\n", st.Topic, st.Messages, st.First, st.Last)
	for _, g := range st.Groups {
		fmt.Printf("group %s: backlog %v, in flight %v, consumers %v\n", g.Group, g.Backlog, g.InFlight, g.Consumers)
	}
	// Output:
	// orders: 3 messages, offsets 0 to 2
	// group billing: backlog 3, in flight 0, consumers 0
}
