package redistest_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// startPrivateCluster starts a three-node Redis Cluster of private
// redis-server processes (no replicas) and returns the node addresses.
func startPrivateCluster(t *testing.T) []string {
	t.Helper()
	// Skips, or fails under MESSAGING_REQUIRE_BROKERS=1, before anything
	// is started.
	fault.NeedBinary(t, redistest.ServerBinary)
	fault.NeedBinary(t, redistest.RedisCLIBinary)
	var addrs []string
	for range 3 {
		r := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", r.Port))
	}
	out, err := exec.Command(redistest.RedisCLIBinary, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// The nodes agree on the slot map asynchronously, with no event to
	// wait for: poll CLUSTER INFO on every node.
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		rc := goredis.NewClient(&goredis.Options{Addr: a})
		for {
			info, err := rc.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				_ = rc.Close()
				t.Fatalf("cluster node %s not ok after 30s: %v %s", a, err, info)
			}
			time.Sleep(100 * time.Millisecond) // polling cluster state, see above
		}
		_ = rc.Close()
	}
	return addrs
}

// TestClusterConformance runs the conformance suite against a private
// three-node Redis Cluster through a go-redis ClusterClient (hash-tagged
// keys, scripts and pipelines routed by slot).
func TestClusterConformance(t *testing.T) {
	t.Parallel() // the variants wait on the broker more than they compute
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	addrs := startPrivateCluster(t)
	t.Run("OpenURL", func(t *testing.T) {
		c, err := messaging.Open(t.Context(), "redis://"+addrs[0]+"?cluster=true&addr="+addrs[1])
		if err != nil {
			t.Fatalf("Open with cluster=true: %v", err)
		}
		defer c.Close()
		if key := c.(*redisadapter.Client).StreamKey("t"); key != "{t}" {
			t.Fatalf("StreamKey = %q, want the hash-tagged {t}", key)
		}
		topic := integration.UniqueName(t, "url")
		col := integration.NewCollector()
		sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group("g"))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "via-url"}); err != nil {
			t.Fatal(err)
		}
		col.WaitDistinct(t, 1, 30*time.Second)
	})
	var clients sync.Map // *redisadapter.Client -> *goredis.ClusterClient
	integration.RunConformance(t, integration.Harness{
		Name: "redis-cluster",
		Open: func(t testing.TB) messaging.Client {
			cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
			t.Cleanup(func() { _ = cc.Close() })
			c := mustNew(t, cc)
			if key := c.StreamKey("t"); key != "{t}" {
				t.Fatalf("cluster StreamKey = %q, want {t}", key)
			}
			clients.Store(c, cc)
			return c
		},
		Kill: func(t testing.TB, c messaging.Client) {
			cc, ok := clients.Load(c)
			if !ok {
				t.Fatalf("Kill: unknown client %T", c)
			}
			_ = cc.(*goredis.ClusterClient).Close()
		},
	})
}
