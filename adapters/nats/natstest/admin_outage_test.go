package natstest_test

import (
	"testing"

	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to a private server cut, or
// the server silent (it takes connections and requests and answers
// nothing, which no error reveals), each topology and admin call fails
// with messaging.ErrUnavailable within about unavailable_timeout, or with
// its context's error when that ends first (fault.AdminWhileUnreachable),
// in both modes; then Close returns within about unavailable_timeout too
// (fault.CloseWhileUnreachable).
func TestAdminWhileUnreachable(t *testing.T) {
	for _, mode := range []string{"jetstream", "core"} {
		for _, how := range unreachableWays {
			t.Run(mode+"/"+how.name, func(t *testing.T) {
				t.Parallel() // private servers, proxies and clients each; waits mostly
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
				fault.AdminWhileUnreachable(t, c, how.of(p), topic, group, integration.UniqueName(t, "gone"), skip)
				fault.CloseWhileUnreachable(t, c)
			})
		}
	}
}

// unreachableWays are the ways TestAdminWhileUnreachable makes the server
// unreachable through its proxy.
var unreachableWays = []struct {
	name string
	of   func(*fault.Proxy) func()
}{{"cut", func(p *fault.Proxy) func() { return p.Cut }}, {"silent", func(p *fault.Proxy) func() { return p.Silence }}}
