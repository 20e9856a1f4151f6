package rabbitmqtest_test

import (
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestConformanceStreams runs the shared suite with stream queues on
// (WithStreams), which makes the client claim Replay and ReplayByTime.
//
// RoundTrip is skipped here (it runs in TestConformance): with Replay
// claimed it requires an Offset on group deliveries, but group deliveries
// come from quorum queues, which have no log offsets; only Stream.Read
// deliveries (from the stream queue) carry one.
func TestConformanceStreams(t *testing.T) {
	h, ok := integration.LookupHarness("rabbitmq")
	if !ok {
		t.Fatal("rabbitmq harness not registered")
	}
	h.Name = "rabbitmq-streams"
	h.Open = func(t testing.TB) messaging.Client {
		if strings.HasSuffix(t.Name(), "/RoundTrip") {
			t.Skip("group deliveries come from quorum queues and carry no Offset; RoundTrip runs in TestConformance")
		}
		return rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t), rabbitmq.WithStreams(true))
	}
	integration.RunConformance(t, h)
}
