package integration

import (
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// memoryBroker is shared by the memory harness's clients, so that clients
// opened by one test talk to each other like clients of a real broker.
var memoryBroker = func() *memory.Broker {
	b, err := memory.NewBroker()
	if err != nil {
		panic(err) // no options: cannot fail
	}
	return b
}()

func init() {
	RegisterHarness(Harness{
		Name: "memory",
		Open: func(t testing.TB) messaging.Client {
			c, err := memoryBroker.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	})
}
