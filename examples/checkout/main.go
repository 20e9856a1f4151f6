// Checkout: the customer waits for the payment, answered over request/reply
// in well under a second; email, inventory and analytics run in the
// background through a work queue with retries and a dead-letter topic.
//
//	go run ./examples/checkout [-short] [-url nats://127.0.0.1:4222]
package main

import (
	"context"

	"github.com/msgkit/messaging/examples/scenario"

	// Adapters register their URL schemes.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

func main() {
	scenario.Main("checkout", "Payment awaited over request/reply; email, inventory and analytics queued.",
		func(ctx context.Context, env *scenario.Env, _ scenario.Flags) error {
			return scenario.Checkout(ctx, env)
		})
}
