package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory" // registers mem://
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/recovery"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/middleware/timeout"
)

// Compose the layers in the recommended order, outermost first: Chain
// checks the order before the first message arrives. A failed attempt is
// redelivered after the retry layer's backoff, each attempt has its own
// deadline, and a message still failing after three attempts would go to
// the dead-letter topic.
func ExampleChain() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://middleware-chain-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	retryOpts := []retry.Option{retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, 10*time.Millisecond), retry.WithModeFor(client.Capabilities())}
	dl, err1 := deadletter.New(client, "orders.dlq")
	rt, err2 := retry.New(retryOpts...)
	to, err3 := timeout.New(5 * time.Second)
	rec, err4 := recovery.New()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		panic(err)
	}

	done := make(chan struct{})
	h, err := middleware.Chain(func(ctx context.Context, m *messaging.Message) error {
		fmt.Println("attempt", m.Attempt)
		if m.Attempt == 1 {
			return errors.New("database busy")
		}
		close(done)
		return nil
	}, dl, rt, to, rec)
	if err != nil {
		panic(err) // misordered: wraps middleware.ErrMisordered
	}
	subOpts, err := retry.SubscribeOptions(retryOpts...) // the same policy for the broker
	if err != nil {
		panic(err)
	}
	sub, err := client.Subscribe(ctx, "orders", h, append(subOpts, messaging.Group("shipping"))...)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	if err := client.Publish(ctx, "orders", &messaging.Message{Payload: []byte("order #1")}); err != nil {
		panic(err)
	}
	<-done
	// Output:
	// attempt 1
	// attempt 2
}

// Validate finds a composition that cannot work without any message: a
// timeout outside an in-process retry (its deadline would cover every
// attempt and the waits between them), or two retry layers (attempts would
// multiply). The timeout inside the retry layer bounds each attempt.
func ExampleValidate() {
	rt, err1 := retry.New(retry.WithInProcess())
	to, err2 := timeout.New(time.Second)
	if err := errors.Join(err1, err2); err != nil {
		panic(err)
	}

	err := middleware.Validate(to, rt)
	fmt.Println(errors.Is(err, middleware.ErrMisordered), err)
	err = middleware.Validate(rt, rt)
	fmt.Println(errors.Is(err, middleware.ErrMisordered), err)
	fmt.Println(middleware.Validate(rt, to))
	// Output:
	// true middleware: validate: middleware: misordered: timeout outside an in-process retry: the deadline would cover every attempt and wait; put timeout inside retry
	// true middleware: validate: middleware: misordered: retry inside another retry layer: attempts would multiply; keep one
	// <nil>
}
