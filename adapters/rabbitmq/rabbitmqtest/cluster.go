package rabbitmqtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
)

// Cluster is a private RabbitMQ cluster of nodes on this machine
// (distinct node names, ports and directories, one Erlang cookie), whose
// nodes a test kills with SIGKILL and restarts one at a time.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// StartCluster boots n private nodes and joins the others to the
// first (rabbitmqctl join_cluster); it returns once every node runs in one
// cluster. Without RabbitMQ the test is skipped (failed under
// MESSAGING_REQUIRE_BROKERS=1).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	fault.NeedBinary(t, RabbitMQServer)
	var b [8]byte
	_, _ = rand.Read(b[:])
	cookie := "TESTCLUSTER" + hex.EncodeToString(b[:])
	rc := &Cluster{t: t}
	for range n {
		rc.Nodes = append(rc.Nodes, newRabbitNode(t, cookie, nil))
	}
	// Boot them together: each takes seconds, mostly waiting.
	errs := make(chan error, n)
	for _, node := range rc.Nodes {
		node.launch()
		go func() { errs <- node.await() }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seed := rc.Nodes[0]
	for _, node := range rc.Nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", seed.Name}, {"start_app"}} {
			if out, err := node.Ctl(60*time.Second, args...); err != nil {
				t.Fatalf("rabbitmqctl -n %s %s: %v\n%s", node.Name, strings.Join(args, " "), err, out)
			}
		}
	}
	if out, err := seed.Ctl(60*time.Second, "await_online_nodes", fmt.Sprint(n), "--timeout", "60"); err != nil {
		t.Fatalf("cluster of %d nodes not online: %v\n%s", n, err, out)
	}
	return rc
}

// URL is the cluster's multi-host AMQP URL (guest/guest):
// amqp://guest:guest@h1:p1,h2:p2,.../
func (rc *Cluster) URL() string {
	addrs := make([]string, len(rc.Nodes))
	for i, n := range rc.Nodes {
		addrs[i] = n.Addr()
	}
	return "amqp://guest:guest@" + strings.Join(addrs, ",") + "/"
}

// Node returns the node named name, or nil.
func (rc *Cluster) Node(name string) *Node {
	for _, n := range rc.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// QueueLeaders asks node via for the leader of each quorum queue named in
// queues ("" for a queue without one, or when via cannot answer).
func (rc *Cluster) QueueLeaders(via *Node, queues ...string) map[string]string {
	out, _ := via.Ctl(30*time.Second, "list_queues", "name", "leader", "--quiet", "--no-table-headers")
	leaders := map[string]string{}
	for _, q := range queues {
		leaders[q] = ""
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			if _, ok := leaders[f[0]]; ok {
				leaders[f[0]] = f[1]
			}
		}
	}
	return leaders
}
