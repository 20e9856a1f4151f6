package kafkatest_test

import (
	"testing"

	"github.com/msgkit/messaging/integration"
)

// TestConformance runs the shared suite against Kafka (MESSAGING_KAFKA_BROKERS,
// else an in-process kfake cluster).
func TestConformance(t *testing.T) {
	h, ok := integration.LookupHarness("kafka")
	if !ok {
		t.Fatal("kafka harness not registered")
	}
	integration.RunConformance(t, h)
}
