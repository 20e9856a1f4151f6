package kafkatest_test

import (
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOutageCut: publishers and two groups (one member, two members) run
// with the adapter's default settings through the proxy of a private
// broker while the network is cut for 3s. Nothing confirmed is lost; the
// stalls are logged (fault.RunOutage).
func TestOutageCut(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	runOutage(t, "kafka cut", k, fault.Outage{Down: k.Cut, Up: k.Restore})
}

// TestOutageRestart: the same workload while the private broker stops and
// starts again 3s later from its data directory on the same port.
func TestOutageRestart(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	runOutage(t, "kafka restart", k, fault.Outage{Down: k.Kill, Up: k.Start})
}

// A broker stopped while a group rebalances: kfake keeps the members whose
// JoinGroup was still pending when it stopped (it saves every member at
// shutdown) and, once back, waits for them until their session timeout (10s
// by default), although their clients never learnt their member IDs and
// rejoin under new ones; the group stalls until then. A real Kafka
// coordinator loads the group from its log, which holds only the members of
// the last completed generation, and does not wait for such members. So the
// outage tests stop the broker while the groups are steady (Stable, every
// member in); TestNetworkCutsLoseNothing covers outages during rebalances.

func runOutage(t *testing.T, name string, k *kafkatest.Cluster, o fault.Outage) {
	url := "kafka://" + k.Brokers() + "?partitions=4"
	o.Steady = func(groups []*fault.CountedGroup, timeout time.Duration) {
		for _, g := range groups {
			waitStable(t, k.Brokers(), g.Name, g.Members, timeout)
		}
	}
	fault.RunOutageTest(t, name, func() messaging.Client { return openURL(t, url, true) }, o)
}

// waitStable waits until group is Stable with members members, polling the
// coordinator (a group's state has no event to wait on), and fails the test
// after timeout.
func waitStable(t *testing.T, brokers, group string, members int, timeout time.Duration) {
	t.Helper()
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(brokers, ",")...), Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := admin.DescribeGroups(t.Context(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].GroupState == "Stable" && len(resp.Groups[0].Members) == members {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not Stable with %d members after %v (%+v, %v)", group, members, timeout, resp, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the coordinator
	}
}
