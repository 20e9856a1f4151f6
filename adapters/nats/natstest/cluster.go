package natstest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
)

// Cluster is a private cluster of nats-server processes (JetStream on,
// routes between every pair, loopback ports), whose servers a test kills
// with SIGKILL and restarts one at a time.
type Cluster struct {
	Servers []*Server
	Names   []string // server names, as JetStream reports stream leaders
}

// StartCluster starts n servers forming one cluster and returns once
// each accepts connections with JetStream ready (a meta leader elected).
// Without the binary the test is skipped (failed under
// MESSAGING_REQUIRE_BROKERS=1).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	fault.NeedBinary(t, NATSServerBinary)
	// A port FreePort returned can be taken by another process before the
	// server binds it: start the whole cluster again on new ports then
	// (the servers name each other's route ports).
	for attempt := 1; ; attempt++ {
		cl, err := startNATSCluster(t, n)
		if err == nil {
			return cl
		}
		for _, s := range cl.Servers {
			s.Kill()
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("starting the cluster again: %v", err)
	}
}

func startNATSCluster(t testing.TB, n int) (*Cluster, error) {
	cl := &Cluster{}
	clusterName := fmt.Sprintf("c%d", fault.FreePort(t))
	routePorts := make([]int, n)
	for i := range routePorts {
		routePorts[i] = fault.FreePort(t)
	}
	for i := range n {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
			}
		}
		name := fmt.Sprintf("%s-n%d", clusterName, i+1)
		s := &Server{t: t, Port: fault.FreePort(t), Dir: t.TempDir(), args: []string{
			"--server_name", name,
			"--cluster_name", clusterName,
			"--cluster", "nats://127.0.0.1:" + strconv.Itoa(routePorts[i]),
			"--routes", strings.Join(routes, ","),
		}}
		cl.Servers = append(cl.Servers, s)
		cl.Names = append(cl.Names, name)
		t.Cleanup(s.Kill)
	}
	// JetStream needs a quorum of servers to elect its meta leader: start
	// them all, then wait.
	for _, s := range cl.Servers {
		s.launch()
	}
	for _, s := range cl.Servers {
		if err := s.ready(60 * time.Second); err != nil {
			return cl, err
		}
	}
	return cl, nil
}

// URL is the cluster's multi-host URL: nats://h1:p1,h2:p2,...
func (cl *Cluster) URL() string {
	addrs := make([]string, len(cl.Servers))
	for i, s := range cl.Servers {
		addrs[i] = s.Addr()
	}
	return "nats://" + strings.Join(addrs, ",")
}

// Server returns the server named name (as in Names), or nil.
func (cl *Cluster) Server(name string) *Server {
	for i, n := range cl.Names {
		if n == name {
			return cl.Servers[i]
		}
	}
	return nil
}
