package redistest_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestFailoverMaster: a Redis Cluster of three masters with one replica
// each; publishers and two groups (one member, two members) run through
// clients given the multi-host URL while the master of the topic's slot is
// killed with SIGKILL (its replica is promoted after the cluster node
// timeout) and later restarted (it rejoins as a replica). Nothing confirmed
// is lost; the stalls are logged (fault.RunFailover).
func TestFailoverMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node cluster")
	}
	cl := redistest.StartCluster(t, 3, 1)
	url := cl.URL() + "&unavailable_timeout=3s"
	open := func() *redisadapter.Client {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		c, err := redisadapter.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	pub := open()
	topic := integration.UniqueName(t, "fo")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	if err := pub.Provision(t.Context(), topic, one, two); err != nil {
		t.Fatal(err)
	}
	key := pub.StreamKey(topic)
	victim := cl.MasterOf(cl.Nodes[0], key)
	if victim == nil {
		t.Fatalf("no master serves %s", key)
	}
	via := cl.Nodes[0]
	if via == victim {
		via = cl.Nodes[1]
	}
	t.Logf("stream %s on master %s; killing it", key, victim.Addr())

	w := fault.StartFailoverWorkload(t, pub, topic, one, two, func() messaging.Consumer { return open() },
		messaging.Concurrency(4), messaging.AckDeadline(2*time.Second))
	fault.RunFailover(t, "redis", w, fault.NodeLoss{
		Kill: func() {
			// What the replica has of the master's writes at the kill:
			// WAIT counts the replicas that acknowledged every write so
			// far (asynchronous replication can still lose what comes
			// after it).
			rc := goredis.NewClient(&goredis.Options{Addr: victim.Addr()})
			acked, err := rc.Wait(t.Context(), 1, time.Second).Result()
			repl, _ := rc.Info(t.Context(), "replication").Result()
			_ = rc.Close()
			t.Logf("before the kill: WAIT 1 -> %d (%v); master replication: %q", acked, err, repl)
			victim.Kill()
		},
		Elected: func(timeout time.Duration) {
			m := cl.WaitPromoted(via, key, victim, timeout)
			t.Logf("replica %s promoted", m.Addr())
		},
		Restart: func() { cl.Restart(victim) },
	})
}
