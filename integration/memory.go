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
		// The memory adapter extends the deadline of what its subscriptions
		// hold, so a stuck handler keeps its message: the ack-deadline case
		// needs a crash.
		Kill: func(t testing.TB, c messaging.Client) {
			mc, ok := c.(*memory.Client)
			if !ok {
				t.Fatalf("Kill: %T is not a memory client", c)
			}
			mc.Kill()
		},
	})
}
