package redistest_test

import (
	"testing"

	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to a private server cut,
// each topology and admin call fails with messaging.ErrUnavailable within
// about unavailable_timeout, or with its context's error when that ends
// first (fault.AdminWhileUnreachable).
func TestAdminWhileUnreachable(t *testing.T) {
	c, p, topic, group := openProvisioned(t)
	fault.AdminWhileUnreachable(t, c, p.Cut, topic, group, integration.UniqueName(t, "gone"), nil)
}

// openProvisioned opens a client (unavailable_timeout=1s) of a private
// server through a proxy, closed when the test ends, and provisions a new
// topic and group.
func openProvisioned(t *testing.T) (c *redisadapter.Client, p *fault.Proxy, topic, group string) {
	t.Helper()
	srv := redistest.StartServer(t)
	p = fault.NewProxy(t, srv.Addr())
	c, err := redisadapter.Open(t.Context(), "redis://"+p.Addr()+"?unavailable_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic, group = integration.UniqueName(t, "down"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	return c, p, topic, group
}
