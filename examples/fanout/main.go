// Inventory fan-out: one "order placed" event, four independent subscribers
// (each its own consumer group), then a fifth added without touching the
// publisher.
//
//	go run ./examples/fanout [-short] [-url redis://127.0.0.1:6379]
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
	scenario.Main("fanout", "One order-placed event, four subscribers, then a fifth.",
		func(ctx context.Context, env *scenario.Env, _ scenario.Flags) error { return scenario.Fanout(ctx, env) })
}
