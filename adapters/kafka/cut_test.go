package kafka_test

import (
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestNetworkCutsLoseNothing: publishers and two groups (one member, two
// members) run through a proxy to a private cluster while the network is
// cut three times for 2-5s (every connection closed, new ones refused).
// Every confirmed message reaches both groups, and publishing and both
// groups resume after each cut (the stalls are logged).
func TestNetworkCutsLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts the network of a private cluster")
	}
	k := fault.StartKafka(t, 1)
	url := "kafka://" + k.Brokers() + "?partitions=4&rebalance_timeout=5s&" + integration.KafkaTestParams
	open := func() *kafka.Client { return openURL(t, url, true) }
	pub := open()
	topic := integration.UniqueName(t, "cut")
	one, two := integration.UniqueName(t, "one"), integration.UniqueName(t, "two")
	if err := pub.Provision(t.Context(), topic, one, two); err != nil {
		t.Fatal(err)
	}
	w := fault.StartWorkload(t, pub, topic, fault.WorkloadOptions{CallTimeout: 2 * time.Second})
	subscribe := func(g *fault.CountedGroup) {
		sub, err := open().Subscribe(t.Context(), topic, g.Handler(), messaging.Group(g.Name), messaging.Concurrency(4))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	g1, g2 := w.Group(one), w.Group(two)
	subscribe(g1)
	subscribe(g2)
	subscribe(g2)
	w.WaitConfirmed(500, 30*time.Second)
	g1.WaitDistinct(t, 100, 30*time.Second)
	g2.WaitDistinct(t, 100, 30*time.Second)

	// Cuts in quick succession: the later ones hit the group while its
	// members are rejoining after the earlier ones.
	for i, cut := range []time.Duration{2 * time.Second, 3 * time.Second, 2 * time.Second} {
		k.CutFor(cut)
		if i < 2 {
			time.Sleep(time.Second + time.Duration(i)*500*time.Millisecond) // the gap between cuts is the subject
		}
	}
	back := time.Now()
	r := w.Recovered(back, 60*time.Second)
	t.Logf("after three cuts: resumed after %v", r)
	for _, g := range []string{one, two} {
		describeGroup(t, k.Brokers(), g)
	}
	w.Finish(60 * time.Second)
}

// describeGroup logs the coordinator's view of a group: its members, where
// they connect from and what they were assigned.
func describeGroup(t *testing.T, brokers, group string) {
	t.Helper()
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(brokers, ",")...), Timeout: 10 * time.Second}
	resp, err := admin.DescribeGroups(t.Context(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(resp.Groups) != 1 {
		t.Logf("describe group %s: %v", group, err)
		return
	}
	g := resp.Groups[0]
	t.Logf("group %s: state %s, %d members", group, g.GroupState, len(g.Members))
	for _, m := range g.Members {
		var parts []int
		for _, a := range m.MemberAssignments.Topics {
			parts = append(parts, a.Partitions...)
		}
		t.Logf("  member %s from %s (%s): partitions %v", m.MemberID, m.ClientHost, m.MemberMetadata.UserData, parts)
	}
}
