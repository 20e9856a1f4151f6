package redistest_test

import (
	"testing"
	"time"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOutageCut: publishers and two groups (one member, two members) run
// with the adapter's default settings through a proxy to a private server
// while the network is cut for 3s. Nothing confirmed is lost; the stalls
// are logged (fault.RunOutage).
func TestOutageCut(t *testing.T) {
	srv := redistest.StartServer(t)
	p := fault.NewProxy(t, srv.Addr())
	runOutage(t, "redis cut", "redis://"+p.Addr(), fault.Outage{Down: p.Cut, Up: p.Restore})
}

// TestOutageRestart: the same workload while the private server (AOF,
// fsync always) is killed with SIGKILL and restarted 3s later on the same
// port and directory.
func TestOutageRestart(t *testing.T) {
	srv := redistest.StartServer(t)
	runOutage(t, "redis restart", srv.URL(), fault.Outage{Down: srv.Kill, Up: srv.Start})
}

func runOutage(t *testing.T, name, url string, o fault.Outage) {
	if testing.Short() {
		t.Skip("takes a private server away")
	}
	open := func() *redisadapter.Client {
		c, err := redisadapter.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
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
