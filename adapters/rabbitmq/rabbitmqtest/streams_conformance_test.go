package rabbitmqtest_test

import (
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestConformanceStreams runs the shared suite with stream queues on
// (WithStreams), which makes the client claim Replay and ReplayByTime.
func TestConformanceStreams(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	h, ok := integration.LookupHarness("rabbitmq")
	if !ok {
		t.Fatal("rabbitmq harness not registered")
	}
	h.Name = "rabbitmq-streams"
	h.Open = func(t testing.TB) messaging.Client {
		return rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t), rabbitmq.WithStreams(true))
	}
	integration.RunConformance(t, h)
}
