// Fan-out: an "order placed" event is published once; four independent
// subscribers (inventory, shipping, email, analytics), each its own consumer
// group, all receive it. A fifth (fraud) then subscribes without any change
// to the publisher.
//
//	go run ./examples/fanout                      # in-process broker
//	go run ./examples/fanout -url redis://127.0.0.1:6379
//
// This file is self-contained: copy it into your own module.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/pubsub"

	// Each adapter registers its URL scheme when imported.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

// OrderPlaced is the event the shop publishes once per order.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Cents   int    `json:"cents"`
}

func main() {
	url := flag.String("url", "mem://", "broker URL")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *url, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// inbox records what each subscriber received and signals every change.
type inbox struct {
	mu      sync.Mutex
	got     map[string][]string // subscriber -> order IDs
	changed chan struct{}
}

func (b *inbox) add(sub, id string) {
	b.mu.Lock()
	if !slices.Contains(b.got[sub], id) { // at-least-once: skip a redelivery
		b.got[sub] = append(b.got[sub], id)
	}
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// waitFor returns once every subscriber in subs has received order id.
func (b *inbox) waitFor(ctx context.Context, subs []string, id string) error {
	for {
		b.mu.Lock()
		ok := true
		for _, s := range subs {
			ok = ok && slices.Contains(b.got[s], id)
		}
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-b.changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func run(ctx context.Context, url string, out io.Writer) error {
	client, err := messaging.Open(ctx, url)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topic := fmt.Sprintf("orders-placed-%d", time.Now().UnixNano())
	if d, ok := client.(messaging.TopicDeleter); ok {
		defer d.DeleteTopic(context.WithoutCancel(ctx), topic)
	}

	var subs []messaging.Subscription
	defer func() { // before the topic is deleted
		for _, s := range subs {
			_ = s.Close()
		}
	}()
	box := &inbox{got: map[string][]string{}, changed: make(chan struct{}, 1)}
	subscribe := func(name string) error {
		// Each subscriber is its own group, so each gets every event.
		sub, err := pubsub.Subscribe(ctx, client, topic, name, func(_ context.Context, e OrderPlaced, _ *messaging.Message) error {
			box.add(name, e.OrderID)
			return nil
		})
		if err != nil {
			return err
		}
		subs = append(subs, sub)
		return nil
	}
	teams := []string{"inventory", "shipping", "email", "analytics"}
	for _, name := range teams {
		if err := subscribe(name); err != nil {
			return err
		}
	}

	pub, err := pubsub.NewPublisher[OrderPlaced](client, topic)
	if err != nil {
		return err
	}
	publish := func(ids ...string) error {
		for _, id := range ids {
			if _, err := pub.Publish(ctx, id, OrderPlaced{OrderID: id, Cents: 4200}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := publish("order-101", "order-102", "order-103"); err != nil {
		return err
	}
	for _, id := range []string{"order-101", "order-102", "order-103"} {
		if err := box.waitFor(ctx, teams, id); err != nil {
			return err
		}
	}
	for _, name := range teams {
		fmt.Fprintf(out, "%-9s got %v\n", name, slices.Sorted(slices.Values(box.got[name])))
	}

	// A new team subscribes; the publisher is untouched.
	if err := subscribe("fraud"); err != nil {
		return err
	}
	if err := publish("order-104"); err != nil {
		return err
	}
	// Fraud may also catch up on earlier orders: on log-backed brokers a new
	// group starts at the oldest retained event.
	if err := box.waitFor(ctx, append(teams, "fraud"), "order-104"); err != nil {
		return err
	}
	fmt.Fprintln(out, "fraud joined; order-104 reached all 5 subscribers")
	return nil
}
