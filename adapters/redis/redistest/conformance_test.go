package redistest_test

import (
	"testing"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

func TestConformance(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	h, ok := integration.LookupHarness("redis")
	if !ok {
		t.Fatal("the redis harness is not registered")
	}
	integration.RunConformance(t, h)
}

// TestConformanceCallerIDs runs the suite with ids=caller
// (WithCallerIDs): Publish assigns no ID nor Time.
func TestConformanceCallerIDs(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	integration.RunConformance(t, integration.Harness{
		Name: "redis-caller-ids",
		Open: func(t testing.TB) messaging.Client { return redistest.Open(t, redisadapter.WithCallerIDs()) },
		Kill: redistest.Kill,
	})
}
