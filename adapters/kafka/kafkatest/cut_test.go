package kafkatest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
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
	k := kafkatest.StartCluster(t, 1)
	url := "kafka://" + k.Brokers() + "?partitions=4&rebalance_timeout=5s&" + kafkatest.TestParams
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
	// The members kafka-go abandoned after the cuts are removed at once
	// (see Recovery in the package documentation); without that, the
	// rebalance waited for them until their session timeout (6s) or the
	// rebalance timeout (5s): groups resumed 2.5-8.2s after the cuts; with
	// it, 0.2-0.6s. The bound leaves room for the one wait kfake can still
	// impose (a member whose join answer the cut dropped, made leader, is
	// waited for up to the 5s rebalance timeout; see the package's
	// Recovery notes), so the test fails on a regression, not on that.
	if !r.OK || r.Max() > 6*time.Second {
		t.Errorf("did not resume within 6s after the cuts: %v", r)
	}
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

// TestPublishRecoversAfterRestart: with a publisher running, the broker is
// killed three times and restarted once a Publish has failed; after each
// restart publishing succeeds
// again within a second (no dead pooled connection is reused), and every
// confirmed message is delivered.
func TestPublishRecoversAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a private cluster")
	}
	k := kafkatest.StartCluster(t, 1)
	url := privateURL(k)
	pub := openURL(t, url, true)
	topic, group := integration.UniqueName(t, "restart"), integration.UniqueName(t, "g")
	if err := pub.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	w := fault.StartWorkload(t, pub, topic, fault.WorkloadOptions{Publishers: 1, CallTimeout: 2 * time.Second})
	g := w.Group(group)
	sub, err := openURL(t, url, true).Subscribe(t.Context(), topic, g.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	var worst time.Duration
	for i := range 3 {
		w.WaitConfirmed(w.Confirmed()+200, 30*time.Second)
		k.Kill()
		w.WaitFailure(30 * time.Second)
		k.Start()
		back := time.Now()
		took, ok := w.PublishRecovery(back, 30*time.Second)
		if !ok {
			t.Fatalf("restart %d: publishing did not resume within 30s", i+1)
		}
		t.Logf("restart %d: publishing resumed %v after the broker was back", i+1, took.Round(time.Millisecond))
		worst = max(worst, took)
	}
	w.Finish(60 * time.Second)
	if worst > time.Second {
		t.Errorf("publishing resumed up to %v after a restart, want within 1s", worst)
	}
}

// TestPublishUnavailable: with the broker down, Publish (without a
// deadline) waits unavailable_timeout and then fails every message with
// messaging.ErrUnavailable.
func TestPublishUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a private cluster")
	}
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, privateURL(k)+"&unavailable_timeout=1s", true)
	topic := integration.UniqueName(t, "down")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	k.Kill()
	begin := time.Now()
	err := c.Publish(context.Background(), topic, &messaging.Message{ID: "during"})
	took := time.Since(begin)
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Fatalf("Publish with the broker down: %v, want messaging.ErrUnavailable", err)
	}
	t.Logf("Publish failed after %v: %v", took.Round(time.Millisecond), err)
	if took < time.Second || took > 3*time.Second {
		t.Errorf("Publish failed after %v, want about the 1s unavailable_timeout", took)
	}
}

// TestPublishUnavailableSilentBroker: with the broker taking requests and
// not answering (the proxy holds every byte for 3s, each way), Publish
// fails with messaging.ErrUnavailable about unavailable_timeout after it
// began. The timeout used to start only when the first attempt had failed,
// which took the 10s write timeout: no answer came before it.
func TestPublishUnavailableSilentBroker(t *testing.T) {
	publishToSilentBroker(t, false)
}

// TestPublishNewTopicSilentBroker: the first Publish to a topic the client
// has not used, while the broker takes requests and does not answer, fails
// with messaging.ErrUnavailable about unavailable_timeout after it began,
// though its ctx has no deadline: the topic's metadata lookup (not in
// kafka-go's cache) is bounded like the produce request.
func TestPublishNewTopicSilentBroker(t *testing.T) {
	publishToSilentBroker(t, true)
}

// publishToSilentBroker publishes once to a private broker, silences it
// and publishes again, to the same topic or to a new one, with a ctx
// without deadline and unavailable_timeout=1s: the Publish must fail with
// messaging.ErrUnavailable before the silence ends.
func publishToSilentBroker(t *testing.T, newTopic bool) {
	if testing.Short() {
		t.Skip("delays a private cluster")
	}
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, privateURL(k)+"&unavailable_timeout=1s", true)
	topic := integration.UniqueName(t, "silent")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	if newTopic {
		topic = integration.UniqueName(t, "new")
	}
	// Short enough to be over when the cleanups close the proxy (its
	// forwarding sleeps through a delay once begun), and an answer would
	// take twice as long: every attempt meets silence.
	const silence = 3 * time.Second
	k.Proxy(0).SetDelay(silence)
	begin := time.Now()
	err := c.Publish(context.Background(), topic, &messaging.Message{ID: "during"})
	took := time.Since(begin)
	k.Proxy(0).SetDelay(0)
	t.Logf("Publish (new topic: %v) returned after %v: %v", newTopic, took.Round(time.Millisecond), err)
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Fatalf("Publish to a silent broker (new topic: %v): %v after %v, want messaging.ErrUnavailable", newTopic, err, took)
	}
	if took >= silence {
		t.Errorf("Publish failed after %v with unavailable_timeout=1s, want about 1s", took)
	}
}
