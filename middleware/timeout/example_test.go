package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/timeout"
)

// The handler's context ends after the limit; a handler that does not
// finish in time fails with ErrTimeout (and is redelivered).
func ExampleNew() {
	mw, err := timeout.New(10 * time.Millisecond)
	if err != nil {
		panic(err)
	}
	h := mw(func(ctx context.Context, _ *messaging.Message) error {
		<-ctx.Done() // a slow call that honours its context
		return ctx.Err()
	})
	err = h(context.Background(), &messaging.Message{ID: "m1", Topic: "orders"})
	fmt.Println(errors.Is(err, timeout.ErrTimeout))
	// Output: true
}
