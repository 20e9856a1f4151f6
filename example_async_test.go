package messaging_test

import (
	"context"
	"fmt"
	"log"
	"os"
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

// The README's loop: PublishAsync and Flush take the Client that Open
// returns (its type does not list the AsyncPublisher methods); Flush
// returns once every callback has run.
func ExampleFlush() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://flush-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	var msgs []*messaging.Message
	for i := range 3 {
		msgs = append(msgs, &messaging.Message{Key: "customer-42", Payload: fmt.Appendf(nil, "order %d", i)})
	}
	msgs = append(msgs, &messaging.Message{Header: messaging.Header{"msgkit-x": "reserved"}}) // fails alone

	log := log.New(os.Stdout, "", 0) // to the example's output
	var failed atomic.Int64
	for _, m := range msgs {
		messaging.PublishAsync(ctx, client, "orders", m, func(m *messaging.Message, err error) {
			if err != nil {
				log.Printf("message %s: %v", m.ID, err) // the same errors Publish gives
				failed.Add(1)
			}
		})
	}
	if err := messaging.Flush(ctx, client); err != nil {
		panic(err)
	}
	fmt.Println(len(msgs)-int(failed.Load()), "accepted,", failed.Load(), "failed")
	// Output:
	// message : messaging: publish to orders: messaging: invalid header: "msgkit-x": names starting with "msgkit-" are reserved for the adapters
	// 3 accepted, 1 failed
}
