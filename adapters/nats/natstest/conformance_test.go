package natstest_test

import (
	"testing"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestConformance runs the shared suite against JetStream mode on the test
// server (MESSAGING_NATS_URL, else an in-process nats-server).
func TestConformance(t *testing.T) {
	h, ok := integration.LookupHarness("nats")
	if !ok {
		t.Fatal("nats harness not registered")
	}
	integration.RunConformance(t, h)
}

// TestConformanceCore runs the suite against core mode; it skips what core
// NATS does not claim (groups with redelivery, replay, ack deadlines).
func TestConformanceCore(t *testing.T) {
	h, ok := integration.LookupHarness("nats-core")
	if !ok {
		t.Fatal("nats-core harness not registered")
	}
	integration.RunConformance(t, h)
}

// TestConformanceCallerIDs runs the suite against JetStream mode with
// ids=caller (WithCallerIDs): Publish assigns no ID nor Time.
func TestConformanceCallerIDs(t *testing.T) {
	integration.RunConformance(t, integration.Harness{
		Name: "nats-caller-ids",
		Open: func(t testing.TB) messaging.Client { return natstest.Open(t, natsadapter.WithCallerIDs()) },
		Kill: natstest.Kill,
	})
}
