package rabbitmqtest_test

import (
	"testing"

	"github.com/msgkit/messaging/integration"
)

// TestConformance runs the shared suite against the broker at
// MESSAGING_AMQP_URL with the default client (no stream queues, so the
// Replay cases are skipped; stream_test.go covers them).
func TestConformance(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	h, ok := integration.LookupHarness("rabbitmq")
	if !ok {
		t.Fatal("rabbitmq harness not registered")
	}
	integration.RunConformance(t, h)
}
