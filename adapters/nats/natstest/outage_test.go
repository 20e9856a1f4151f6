package natstest_test

import (
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOutageCut: publishers and two groups (one member, two members) run
// with the adapter's default reconnect settings through a proxy to a
// private server while the network is cut for 3s. Nothing confirmed is
// lost; the stalls are logged (fault.RunOutage).
func TestOutageCut(t *testing.T) {
	srv := natstest.StartServer(t)
	p := fault.NewProxy(t, srv.Addr())
	runOutage(t, "nats cut", "nats://"+p.Addr(), fault.Outage{Down: p.Cut, Up: p.Restore})
}

// TestOutageRestart: the same workload while the private server is killed
// with SIGKILL and restarted 3s later on the same port and store.
func TestOutageRestart(t *testing.T) {
	srv := natstest.StartServer(t)
	runOutage(t, "nats restart", srv.URL(), fault.Outage{Down: srv.Kill, Up: srv.Start})
}

func runOutage(t *testing.T, name, url string, o fault.Outage) {
	if testing.Short() {
		t.Skip("takes a private server away")
	}
	open := func() *natsadapter.Client { return natstest.OpenURL(t, url) }
	pub := open()
	topic := integration.UniqueName(t, "out")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	if err := pub.Provision(t.Context(), topic, one, two); err != nil {
		t.Fatal(err)
	}
	w := fault.StartFailoverWorkload(t, pub, topic, one, two, func() messaging.Consumer { return open() },
		messaging.Concurrency(4), messaging.AckDeadline(2*time.Second))
	fault.RunOutage(t, name, w, o)
}
