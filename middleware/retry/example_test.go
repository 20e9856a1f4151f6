package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/middleware/retry"
)

// A handler failing twice is retried with backoff and succeeds on the third
// attempt. SubscribeOptions gives the broker the same policy, so attempts
// do not multiply.
func ExampleNew() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://retry-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	opts := []retry.Option{retry.WithMaxAttempts(5), retry.WithBackoff(time.Millisecond, 10*time.Millisecond), retry.WithModeFor(client.Capabilities())}
	done := make(chan int)
	mw, err := retry.New(opts...)
	if err != nil {
		panic(err)
	}
	h := mw(func(_ context.Context, m *messaging.Message) error {
		fmt.Println("attempt", m.Attempt)
		if m.Attempt < 3 {
			return errors.New("payment service unavailable")
		}
		done <- m.Attempt
		return nil
	})
	subOpts, err := retry.SubscribeOptions(opts...)
	if err != nil {
		panic(err)
	}
	sub, err := client.Subscribe(ctx, "payments", h, append(subOpts, messaging.Group("billing"))...)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	if err := client.Publish(ctx, "payments", &messaging.Message{Payload: []byte("charge")}); err != nil {
		panic(err)
	}
	fmt.Println("succeeded on attempt", <-done)
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// succeeded on attempt 3
}
