package circuitbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/circuitbreaker"
)

// After two consecutive failures the breaker opens: further messages fail
// fast with ErrOpen (and are redelivered later) without calling the
// handler, until the open timeout lets a trial call through.
func ExampleNew() {
	calls := 0
	mw, err := circuitbreaker.New(circuitbreaker.WithConsecutiveFailures(2), circuitbreaker.WithOpenTimeout(time.Minute))
	if err != nil {
		panic(err)
	}
	h := mw(
		func(context.Context, *messaging.Message) error {
			calls++
			return errors.New("inventory service down")
		})
	m := &messaging.Message{ID: "m", Topic: "orders"}
	for range 4 {
		err := h(context.Background(), m)
		fmt.Println(errors.Is(err, circuitbreaker.ErrOpen))
	}
	fmt.Println("handler calls:", calls)
	// Output:
	// false
	// false
	// true
	// true
	// handler calls: 2
}
