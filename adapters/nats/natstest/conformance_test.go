package natstest_test

import (
	"testing"

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
