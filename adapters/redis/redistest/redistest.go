package redistest

import (
	"context"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
)

// Broker is the Redis server tests use: MESSAGING_REDIS_URL (a redis:// URL),
// else a redis:7 container. There is no in-process Redis.
var Broker = &brokertest.Broker{
	Name:         "Redis",
	EnvVar:       "MESSAGING_REDIS_URL",
	Image:        "redis:7",
	Port:         "6379/tcp",
	FromHostPort: func(hp string) string { return "redis://" + hp },
}

// redisClients maps the harness's adapter clients to their go-redis
// clients, so Kill can drop the connection under a client.
var redisClients sync.Map // *redisadapter.Client -> goredis.UniversalClient

// Open returns a Redis adapter client for the test broker, built with
// New over a go-redis client; both are closed when the test ends.
func Open(t testing.TB, opts ...redisadapter.Option) *redisadapter.Client {
	t.Helper()
	url := Broker.Endpoint(t)
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("MESSAGING_REDIS_URL: %v", err)
	}
	rc := goredis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		t.Fatalf("Redis at %s: %v", Broker.Source(), err)
	}
	c, err := redisadapter.New(rc, opts...)
	if err != nil {
		_ = rc.Close()
		t.Fatal(err)
	}
	redisClients.Store(c, goredis.UniversalClient(rc))
	t.Cleanup(func() {
		// The adapter's client first (idempotent: a test may have closed
		// it): left open, its goroutines and subscriptions outlive the
		// test, and a benchmark process's heap grew with every run.
		_ = c.Close()
		redisClients.Delete(c)
		_ = rc.Close()
	})
	return c
}

// Kill crashes c abruptly: its go-redis client is closed under it, so
// nothing it holds is acknowledged, released or extended any more. Its
// pending messages stay with the group until another member claims them.
func Kill(t testing.TB, c messaging.Client) {
	t.Helper()
	rc, ok := redisClients.Load(c)
	if !ok {
		t.Fatalf("Kill: %T was not opened by Open", c)
	}
	_ = rc.(goredis.UniversalClient).Close()
}

func init() {
	integration.RegisterHarness(integration.Harness{
		Name: "redis",
		Open: func(t testing.TB) messaging.Client { return Open(t) },
		Kill: Kill,
	})
}
