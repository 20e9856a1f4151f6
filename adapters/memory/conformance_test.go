package memory_test

import (
	"testing"

	"github.com/msgkit/messaging/integration"
)

func TestConformance(t *testing.T) {
	h, ok := integration.LookupHarness("memory")
	if !ok {
		t.Fatal("memory harness not registered")
	}
	integration.RunConformance(t, h)
}
