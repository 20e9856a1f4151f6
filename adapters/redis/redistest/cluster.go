package redistest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
	goredis "github.com/redis/go-redis/v9"
)

// RedisCLIBinary is the redis-cli StartCluster creates clusters with.
const RedisCLIBinary = "/usr/bin/redis-cli"

// RedisClusterNodeTimeout is the cluster-node-timeout of StartCluster's
// nodes: a master unreachable this long is failed over to its replica.
const RedisClusterNodeTimeout = 2 * time.Second

// Cluster is a private Redis Cluster of redis-server processes (AOF,
// fsync always) which a test kills with SIGKILL and restarts one at a
// time.
type Cluster struct {
	t        testing.TB
	Nodes    []*Server
	replicas int // per master
}

// StartCluster starts masters masters with replicas replicas each
// (redis-cli --cluster create) and returns once every node reports
// cluster_state:ok, knows every other node, and every replica's link to
// its master is up. Without the binaries the test is skipped (failed under
// MESSAGING_REQUIRE_BROKERS=1).
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	fault.NeedBinary(t, ServerBinary)
	fault.NeedBinary(t, RedisCLIBinary)
	rc := &Cluster{t: t, replicas: replicas}
	var addrs []string
	for range masters * (1 + replicas) {
		r := StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(RedisClusterNodeTimeout.Milliseconds())))
		rc.Nodes = append(rc.Nodes, r)
		addrs = append(addrs, r.Addr())
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(RedisCLIBinary, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range rc.Nodes {
		rc.waitNode(n, 60*time.Second)
	}
	return rc
}

// waitNode polls (the nodes agree asynchronously, with no event to wait
// for) until n sees a healthy cluster of every node and, as a replica, is
// linked to its master.
func (rc *Cluster) waitNode(n *Server, timeout time.Duration) {
	rc.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: n.Addr()})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.ClusterInfo(ctx).Result()
		repl := ""
		if err == nil {
			repl, err = c.Info(ctx, "replication").Result()
		}
		cancel()
		// A master counts once its replicas are connected: redis-cli turns
		// nodes into replicas only after they learnt of their master, so a
		// node seen as a master may still become a replica, and a replica
		// must have synced before its master can be lost.
		if err == nil && strings.Contains(info, "cluster_state:ok") &&
			strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(rc.Nodes))+"\r") &&
			(strings.Contains(repl, "role:master") && strings.Contains(repl, "connected_slaves:"+strconv.Itoa(rc.replicas)+"\r") ||
				strings.Contains(repl, "role:slave") && strings.Contains(repl, "master_link_status:up")) {
			return
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("cluster node %s not ready after %v: %v\n%s\n%s", n.Addr(), timeout, err, info, repl)
		}
		time.Sleep(100 * time.Millisecond) // polling cluster state, see above
	}
}

// URL is the cluster's multi-host URL:
// redis://h1:p1?cluster=true&addr=h2:p2&addr=...
func (rc *Cluster) URL() string {
	u := "redis://" + rc.Nodes[0].Addr() + "?cluster=true"
	for _, n := range rc.Nodes[1:] {
		u += "&addr=" + n.Addr()
	}
	return u
}

// MasterOf returns the node that is master of key's slot, asking the
// living node via (nil when no node serves the slot).
func (rc *Cluster) MasterOf(via *Server, key string) *Server {
	rc.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: via.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	slot, err := c.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		return nil
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start > slot || slot > r.End {
				continue
			}
			for _, sn := range sh.Nodes {
				if sn.Role != "master" || sn.Health != "online" {
					continue
				}
				for _, n := range rc.Nodes {
					if int64(n.Port) == sn.Port {
						return n
					}
				}
			}
		}
	}
	return nil
}

// WaitPromoted waits until the living node via reports a master other than
// old for key's slot (the failover done), failing the test after timeout;
// it returns the new master.
func (rc *Cluster) WaitPromoted(via *Server, key string, old *Server, timeout time.Duration) *Server {
	rc.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := rc.MasterOf(via, key); m != nil && m != old {
			return m
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("no replica of %s promoted after %v", old.Addr(), timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling the failover, see waitNode
	}
}

// Restart starts n again (same port, data and nodes.conf) and waits until
// it is back in the cluster (as a replica of its former replica, after a
// failover).
func (rc *Cluster) Restart(n *Server) {
	rc.t.Helper()
	n.Start()
	rc.waitNode(n, 60*time.Second)
}
