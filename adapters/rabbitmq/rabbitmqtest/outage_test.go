package rabbitmqtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOutageCut: publishers and two groups (one member, two members) run
// with the adapter's default settings through a proxy to a private node
// while the network is cut for 3s. Nothing confirmed is lost; the stalls
// are logged (fault.RunOutage).
func TestOutageCut(t *testing.T) {
	n := rabbitmqtest.StartNode(t)
	p := fault.NewProxy(t, n.Addr())
	runOutage(t, "rabbitmq cut", n, "amqp://guest:guest@"+p.Addr()+"/", fault.Outage{Down: p.Cut, Up: p.Restore})
}

// TestOutageRestart: the same workload while the private node is killed
// with SIGKILL and restarted 3s later on the same port and data.
func TestOutageRestart(t *testing.T) {
	n := rabbitmqtest.StartNode(t)
	runOutage(t, "rabbitmq restart", n, n.URL(), fault.Outage{Down: n.Kill, Up: n.Start})
}

func runOutage(t *testing.T, name string, n *rabbitmqtest.Node, url string, o fault.Outage) {
	// RabbitMQ 3.10 writes a new quorum queue's Ra server ID to disk only
	// every few minutes; flush it before the outage, as
	// TestCrashRestartNoLoss does, so that the SIGKILL does not lose the
	// queues (a broker bug, not the subject).
	o.Steady = func([]*fault.CountedGroup, time.Duration) {
		if out, err := n.Ctl(30*time.Second, "eval", "dets:sync(ra_directory_reverse)."); err != nil {
			t.Fatalf("flushing Ra's directory: %v\n%s", err, out)
		}
	}
	fault.RunOutageTest(t, name, func() messaging.Client {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		c, err := rabbitmq.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}, o)
}
