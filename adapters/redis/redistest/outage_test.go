package redistest_test

import (
	"testing"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOutageCut: publishers and two groups (one member, two members) run
// with the adapter's default settings through a proxy to a private server
// while the network is cut for 3s. Nothing confirmed is lost; the stalls
// are logged (fault.RunOutageTest).
func TestOutageCut(t *testing.T) {
	srv := redistest.StartServer(t)
	p := fault.NewProxy(t, srv.Addr())
	fault.RunOutageTest(t, "redis cut", openAt(t, "redis://"+p.Addr()), fault.Outage{Down: p.Cut, Up: p.Restore})
}

// TestOutageRestart: the same workload while the private server (AOF,
// fsync always) is killed with SIGKILL and restarted 3s later on the same
// port and directory.
func TestOutageRestart(t *testing.T) {
	srv := redistest.StartServer(t)
	fault.RunOutageTest(t, "redis restart", openAt(t, srv.URL()), fault.Outage{Down: srv.Kill, Up: srv.Start})
}

// openAt opens clients of url, closed when the test ends.
func openAt(t *testing.T, url string) func() messaging.Client {
	return func() messaging.Client {
		c, err := redisadapter.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
}
