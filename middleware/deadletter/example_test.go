package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/middleware/deadletter"
)

// A message that keeps failing is published to a dead-letter topic with the
// reason, and acknowledged; a Queue lists and redrives dead letters.
func ExampleNew() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://deadletter-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	handled := make(chan struct{})
	var once sync.Once
	mw, err := deadletter.New(client, "orders.dlq", deadletter.WithMaxAttempts(2))
	if err != nil {
		panic(err)
	}
	h := mw(func(_ context.Context, m *messaging.Message) error {
		if m.Attempt == 2 {
			defer once.Do(func() { close(handled) })
		}
		return errors.New("invalid address")
	})
	sub, err := client.Subscribe(ctx, "orders", h, messaging.Group("shipping"))
	if err != nil {
		panic(err)
	}
	if err := client.Publish(ctx, "orders", &messaging.Message{ID: "order-7", Payload: []byte("to: nowhere")}); err != nil {
		panic(err)
	}
	<-handled
	_ = sub.Close() // lets the last attempt finish: the letter is written

	q, err := deadletter.NewQueue(client, "orders.dlq")
	if err != nil {
		panic(err)
	}
	letters, err := q.List(ctx)
	if err != nil {
		panic(err)
	}
	for _, l := range letters {
		fmt.Printf("%s from %s after %d attempts: %s\n", l.OriginalID, l.Topic, l.Attempts, l.Reason)
	}
	n, err := q.RedriveAll(ctx) // back to "orders", once the address is fixed
	if err != nil {
		panic(err)
	}
	left, err := q.Scan(ctx, 50*time.Millisecond) // read-only listing
	if err != nil {
		panic(err)
	}
	fmt.Println("redriven:", n, "left:", len(left))
	// Output:
	// order-7 from orders after 2 attempts: invalid address
	// redriven: 1 left: 0
}
