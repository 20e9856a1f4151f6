package natstest_test

import (
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOutageCut: publishers and two groups (one member, two members) run
// with the adapter's default reconnect settings through a proxy to a
// private server while the network is cut for 3s. Nothing confirmed is
// lost; the stalls are logged (fault.RunOutageTest).
func TestOutageCut(t *testing.T) {
	srv := natstest.StartServer(t)
	p := fault.NewProxy(t, srv.Addr())
	fault.RunOutageTest(t, "nats cut", openAt(t, "nats://"+p.Addr()), fault.Outage{Down: p.Cut, Up: p.Restore})
}

// TestOutageRestart: the same workload while the private server is killed
// with SIGKILL and restarted 3s later on the same port and store.
func TestOutageRestart(t *testing.T) {
	srv := natstest.StartServer(t)
	fault.RunOutageTest(t, "nats restart", openAt(t, srv.URL()), fault.Outage{Down: srv.Kill, Up: srv.Start})
}

// openAt opens clients of url, closed when the test ends.
func openAt(t *testing.T, url string) func() messaging.Client {
	return func() messaging.Client { return natstest.OpenURL(t, url) }
}
