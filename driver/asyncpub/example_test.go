package asyncpub_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/driver/asyncpub"
)

// A Batcher over a batch publish; here the "broker" records what it is
// sent, and one lane keeps a single order.
func ExampleBatcher() {
	var mu sync.Mutex
	var stored []string
	publish := func(_ context.Context, topic string, msgs ...*messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			stored = append(stored, topic+"/"+string(m.Payload))
		}
		return nil
	}
	validate := func(topic string, m *messaging.Message) error {
		return driver.PreparePublish(topic, []*messaging.Message{m}, 1<<20)
	}
	b := asyncpub.NewBatcher(1, 100, validate, publish)
	defer b.Close()

	ctx := context.Background()
	var failed []string
	var fmu sync.Mutex
	done := func(m *messaging.Message, err error) {
		if err != nil {
			fmu.Lock()
			failed = append(failed, string(m.Payload))
			fmu.Unlock()
		}
	}
	for _, p := range []string{"a", "b", "c"} {
		b.PublishAsync(ctx, "orders", &messaging.Message{Payload: []byte(p)}, done)
	}
	b.PublishAsync(ctx, "bad topic", &messaging.Message{Payload: []byte("d")}, done)
	if err := b.Flush(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("stored:", stored)
	fmt.Println("failed:", failed)
	// Output:
	// stored: [orders/a orders/b orders/c]
	// failed: [d]
}
