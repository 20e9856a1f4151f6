package recovery_test

import (
	"context"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/recovery"
)

// A panicking handler becomes an error (a nack) instead of crashing the
// consumer.
func ExampleNew() {
	mw, err := recovery.New()
	if err != nil {
		panic(err)
	}
	h := mw(func(context.Context, *messaging.Message) error {
		panic("unexpected nil order") // a bug in the handler
	})
	err = h(context.Background(), &messaging.Message{ID: "m1", Topic: "orders"})
	fmt.Println("handler returned an error:", err != nil)
	fmt.Println("retried later:", !messaging.IsPermanent(err))
	// Output:
	// handler returned an error: true
	// retried later: true
}
