package kafkatest_test

import (
	"testing"

	"github.com/msgkit/messaging/integration"
)

// TestConformance runs the shared suite against Kafka (MESSAGING_KAFKA_BROKERS,
// else an in-process kfake cluster).
func TestConformance(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	h, ok := integration.LookupHarness("kafka")
	if !ok {
		t.Fatal("kafka harness not registered")
	}
	integration.RunConformance(t, h)
}
