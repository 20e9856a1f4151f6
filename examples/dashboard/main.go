// Live dashboard: sales stream into a running aggregate printed as it
// changes; the dashboard stops, more sales arrive, and it restarts from its
// checkpoint, counting every sale exactly once. Needs a log-backed broker
// (mem, NATS JetStream, Redis Streams, Kafka, RabbitMQ streams).
//
//	go run ./examples/dashboard [-short] [-url ...] [-checkpoint DIR]
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
	scenario.Main("dashboard", "A running aggregate over a stream, restartable from its checkpoint.",
		func(ctx context.Context, env *scenario.Env, f scenario.Flags) error {
			store, err := f.Store()
			if err != nil {
				return err
			}
			return scenario.Dashboard(ctx, env, store)
		})
}
