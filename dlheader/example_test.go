package dlheader_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/dlheader"
	"github.com/msgkit/messaging/middleware/deadletter"
)

// Set turns a copy of a failed message into its dead letter: the
// envelope's headers say where it came from and why it was given up, the
// message's own headers stay, and an earlier envelope is replaced.
func ExampleSet() {
	failed := &messaging.Message{
		ID: "order-7", Topic: "orders", Group: "shipping", Attempt: 3,
		Header: messaging.Header{"content-type": "application/json", dlheader.HeaderReason: "an earlier failure"},
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	letter := failed.Clone()
	dlheader.Set(letter.Header, dlheader.FailureOf(failed, errors.New("invalid address"), at))
	for _, k := range slices.Sorted(maps.Keys(letter.Header)) {
		fmt.Printf("%s: %s\n", k, letter.Header[k])
	}
	// Output:
	// content-type: application/json
	// x-dead-letter-attempts: 3
	// x-dead-letter-group: shipping
	// x-dead-letter-id: order-7
	// x-dead-letter-reason: invalid address
	// x-dead-letter-time: 2026-03-01T12:00:00Z
	// x-dead-letter-topic: orders
}

// A dead letter built with Set, as an adapter that dead-letters natively
// builds its own, is one the deadletter middleware's Queue lists and
// redrives like the middleware's.
func Example() {
	ctx := context.Background()
	client, err := memory.New() // any client whose adapter can replay
	if err != nil {
		panic(err)
	}
	defer client.Close()

	failed := &messaging.Message{ID: "order-7", Topic: "orders", Group: "shipping", Attempt: 1, Payload: []byte("to: nowhere")}
	letter := &messaging.Message{Key: failed.Key, Payload: failed.Payload, Header: messaging.Header{}}
	dlheader.Set(letter.Header, dlheader.FailureOf(failed, errors.New("invalid address"), time.Now()))
	if err := client.Publish(ctx, "orders.dlq", letter); err != nil {
		panic(err)
	}

	q, err := deadletter.NewQueue(client, "orders.dlq")
	if err != nil {
		panic(err)
	}
	letters, err := q.List(ctx)
	if err != nil {
		panic(err)
	}
	for _, l := range letters {
		fmt.Printf("%s from %s (group %s) after %d attempt: %s\n", l.OriginalID, l.Topic, l.Group, l.Attempts, l.Reason)
	}
	// Output:
	// order-7 from orders (group shipping) after 1 attempt: invalid address
}
