package redistest_test

import (
	"testing"

	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestAdminWhileUnreachable: with the network to a private server cut, or
// the server silent (it takes connections and requests and answers
// nothing, which no error reveals), each topology and admin call fails
// with messaging.ErrUnavailable within about unavailable_timeout, or with
// its context's error when that ends first (fault.AdminWhileUnreachable);
// then Close returns within about unavailable_timeout too
// (fault.CloseWhileUnreachable).
func TestAdminWhileUnreachable(t *testing.T) {
	for _, how := range []struct {
		name string
		of   func(*fault.Proxy) func()
	}{{"cut", func(p *fault.Proxy) func() { return p.Cut }}, {"silent", func(p *fault.Proxy) func() { return p.Silence }}} {
		t.Run(how.name, func(t *testing.T) {
			t.Parallel() // a private server, proxy and client each; waits mostly
			c, p, topic, group := openProvisioned(t)
			fault.AdminWhileUnreachable(t, c, how.of(p), topic, group, integration.UniqueName(t, "gone"), nil)
			fault.CloseWhileUnreachable(t, c)
		})
	}
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
