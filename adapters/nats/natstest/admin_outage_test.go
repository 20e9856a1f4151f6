package natstest_test

import (
	"testing"

	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to a private server cut,
// each topology and admin call fails with messaging.ErrUnavailable within
// about unavailable_timeout, or with its context's error when that ends
// first (fault.AdminWhileUnreachable), in both modes.
func TestAdminWhileUnreachable(t *testing.T) {
	for _, mode := range []string{"jetstream", "core"} {
		t.Run(mode, func(t *testing.T) {
			srv := natstest.StartServer(t)
			p := fault.NewProxy(t, srv.Addr())
			c := natstest.OpenURL(t, "nats://"+p.Addr()+"?unavailable_timeout=1s&mode="+mode)
			topic, group := integration.UniqueName(t, "adm"), integration.UniqueName(t, "g")
			if err := c.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			var skip map[string]string
			if mode == "core" {
				// Not a gap: there is nothing to reach the server for.
				skip = map[string]string{
					"Provision":   "core NATS keeps no state: Provision does nothing and succeeds without the server",
					"DeleteTopic": "core NATS keeps no state: DeleteTopic does nothing and succeeds without the server",
				}
			}
			fault.AdminWhileUnreachable(t, c, p.Cut, topic, group, integration.UniqueName(t, "gone"), skip)
		})
	}
}
