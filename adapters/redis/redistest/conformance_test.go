package redistest_test

import (
	"testing"

	"github.com/msgkit/messaging/integration"
)

func TestConformance(t *testing.T) {
	h, ok := integration.LookupHarness("redis")
	if !ok {
		t.Fatal("the redis harness is not registered")
	}
	integration.RunConformance(t, h)
}
