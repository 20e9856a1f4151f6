package integration

import (
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// memoryBroker is shared by the memory harness's clients, so that clients
// opened by one test talk to each other like clients of a real broker.
var memoryBroker = memory.NewBroker()

func init() {
	RegisterHarness(Harness{
		Name: "memory",
		Open: func(testing.TB) messaging.Client { return memoryBroker.NewClient() },
	})
}
