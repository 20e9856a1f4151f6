package kafkatest_test

import (
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestFailoverPartitionLeader: publishers and two groups (one member, two
// members) run against a three-broker kfake cluster, each broker behind its
// own proxy, while the leader of partition 0 is lost and later comes back.
//
// kfake keeps one copy of the data for the whole cluster in one process, so
// a broker cannot be killed alone. The loss is the closest it allows: the
// broker's proxy cuts every connection to it and refuses new ones (to the
// clients it is dead), and at the same moment every partition it leads is
// moved to another broker (MoveTopicPartition: a leader election with an
// epoch bump, as the controller does when a broker dies) and the group
// coordinators are rehashed until neither group's coordinator is on it (as
// __consumer_offsets partitions fail over). The metadata still lists the
// cut broker, as real Kafka's does until its session with the controller
// expires. The restart restores the proxy. What this exercises: the
// clients noticing the dead connections, refreshing metadata, producing to
// and fetching from the new leaders, finding the new coordinator and
// rejoining; not replication (kfake has none), so no acknowledged write
// can be lost in the broker, and a loss here is the client's.
func TestFailoverPartitionLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private cluster")
	}
	k := kafkatest.StartCluster(t, 3)
	url := "kafka://" + k.Brokers() + "?partitions=3&rebalance_timeout=5s&metadata_ttl=500ms&" + kafkatest.TestParams
	open := func() *kafka.Client { return openURL(t, url, true) }
	pub := open()
	topic := integration.UniqueName(t, "fo")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	if err := pub.Provision(t.Context(), topic, one, two); err != nil {
		t.Fatal(err)
	}
	w := fault.StartFailoverWorkload(t, pub, topic, one, two, func() messaging.Consumer { return open() }, messaging.Concurrency(4))
	c := k.Cluster()
	victim := c.LeaderFor(topic, 0)
	if victim < 0 {
		t.Fatalf("partition 0 of %s has no leader", topic)
	}
	fault.RunFailover(t, "kafka", w, fault.NodeLoss{
		Kill: func() {
			k.Proxy(int(victim)).Cut()
			other := (victim + 1) % 3
			var moved []int32
			for p := range int32(3) {
				if c.LeaderFor(topic, p) == victim {
					if err := c.MoveTopicPartition(topic, p, other); err != nil {
						t.Fatal(err)
					}
					moved = append(moved, p)
				}
			}
			rehashes := 0
			for c.CoordinatorFor(one) == victim || c.CoordinatorFor(two) == victim {
				if rehashes++; rehashes > 100 {
					t.Fatal("group coordinators stay on the lost broker")
				}
				c.RehashCoordinators()
			}
			t.Logf("broker %d cut; partitions %v moved to broker %d; coordinators rehashed %d times (now %d, %d)",
				victim, moved, other, rehashes, c.CoordinatorFor(one), c.CoordinatorFor(two))
		},
		Restart: k.Proxy(int(victim)).Restore,
	})
}
