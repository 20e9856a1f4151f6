// External API sync: a local HTTP server stands in for a partner API without
// webhooks; a poller keeps a topic current using a cursor and ETags, and
// after a restart publishes only what is new.
//
//	go run ./examples/apisync [-short] [-url ...] [-checkpoint DIR]
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
	scenario.Main("apisync", "A partner HTTP API without webhooks, polled into a topic.",
		func(ctx context.Context, env *scenario.Env, f scenario.Flags) error {
			store, err := f.Store()
			if err != nil {
				return err
			}
			return scenario.APISync(ctx, env, store)
		})
}
