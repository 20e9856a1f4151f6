package redistest_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redis "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
)

// TestReadmeForms: the two ways to a client that the adapter's README
// shows, a URL and a go-redis client the program already has, both work
// and apply the prefix.
func TestReadmeForms(t *testing.T) {
	ctx := t.Context()
	ep := redistest.Broker.Endpoint(t)
	url := ep + "?prefix=app:"
	o, err := goredis.ParseURL(ep)
	if err != nil {
		t.Fatal(err)
	}
	existingUniversalClient := goredis.NewClient(o)
	t.Cleanup(func() { _ = existingUniversalClient.Close() })

	c, err := messaging.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	opened := c
	t.Cleanup(func() { _ = opened.Close() })
	// or wrap a client you already have (standalone, failover or cluster):
	c, err = redis.New(existingUniversalClient, redis.WithPrefix("app:"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for i, c := range []messaging.Client{opened, c} {
		if got := c.(*redis.Client).StreamKey("orders"); got != "app:orders" {
			t.Errorf("client %d: StreamKey(orders) = %q, want app:orders", i, got)
		}
	}
}
