package main

import (
	"context"
	"flag"
	"os"

	"github.com/msgkit/messaging"

	// Every adapter that exists registers its URL scheme.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

// urlFlag adds --url to fs and returns a function giving its value, or
// MESSAGING_URL, or mem://.
func urlFlag(fs *flag.FlagSet) func() string {
	u := fs.String("url", "", "broker URL, e.g. nats://127.0.0.1:4222, redis://127.0.0.1:6379, kafka://127.0.0.1:9092, amqp://guest:guest@127.0.0.1:5672/, mem:// (default $MESSAGING_URL, else mem://)")
	return func() string {
		if *u != "" {
			return *u
		}
		if v := os.Getenv("MESSAGING_URL"); v != "" {
			return v
		}
		return "mem://"
	}
}

// open opens the broker URL.
func open(ctx context.Context, url string) (messaging.Client, error) {
	return messaging.Open(ctx, url)
}
