package messaging_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/msgkit/messaging"
)

// Publish from one goroutine without waiting for each message: every
// message gets exactly one result in its callback; Flush waits for all.
func ExamplePublishAsync() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://async-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	var ok, failed atomic.Int64
	done := func(m *messaging.Message, err error) {
		if err != nil {
			failed.Add(1) // err says why this message, m, was not accepted
			return
		}
		ok.Add(1)
	}
	for i := range 1000 {
		msg := &messaging.Message{Key: fmt.Sprint("customer-", i%10), Payload: []byte("order")}
		// Every adapter's client is an AsyncPublisher; this function also
		// accepts any Publisher.
		messaging.PublishAsync(ctx, client, "orders", msg, done)
	}
	// An invalid message fails alone.
	messaging.PublishAsync(ctx, client, "orders", &messaging.Message{Header: messaging.Header{"msgkit-x": "reserved"}}, done)
	if err := messaging.Flush(ctx, client); err != nil {
		panic(err)
	}
	fmt.Println(ok.Load(), "accepted,", failed.Load(), "failed")
	// Output: 1000 accepted, 1 failed
}
