package kafkatest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestPublishSeesAddedPartitions: Publish keeps a topic's partition count
// for metadata_ttl (so that a Publish within it makes no lookup), and no
// longer: partitions added to the topic receive keyless messages within
// about twice metadata_ttl, as with kafka-go's metadata cache alone.
func TestPublishSeesAddedPartitions(t *testing.T) {
	const ttl = 300 * time.Millisecond
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1)+"&metadata_ttl="+ttl.String(), true)
	topic := integration.UniqueName(t, "grow")
	publish := func() {
		t.Helper()
		msgs := make([]*messaging.Message, 8)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: []byte("x")}
		}
		if err := c.Publish(t.Context(), topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	publish() // creates the topic with one partition; its count is kept
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(k.Brokers(), ",")[0])}
	res, err := admin.CreatePartitions(t.Context(), &kafkago.CreatePartitionsRequest{
		Topics: []kafkago.TopicPartitionsConfig{{Name: topic, Count: 4}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	newer := func() int64 { // messages in the added partitions
		reqs := map[string][]kafkago.OffsetRequest{topic: {kafkago.LastOffsetOf(1), kafkago.LastOffsetOf(2), kafkago.LastOffsetOf(3)}}
		out, err := admin.ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{Topics: reqs})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range out.Topics[topic] {
			if p.Error == nil {
				n += p.LastOffset
			}
		}
		return n
	}
	for newer() == 0 {
		if took := time.Since(added); took > 2*ttl+2*time.Second {
			t.Fatalf("no keyless message in the added partitions %v after they were added (metadata_ttl %v)", took, ttl)
		}
		publish()
	}
	t.Logf("added partitions used %v after they were added (metadata_ttl %v)", time.Since(added).Round(time.Millisecond), ttl)
}

// addPartitions grows topic to count partitions on cluster k.
func addPartitions(t *testing.T, k *kafkatest.Cluster, topic string, count int) {
	t.Helper()
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(k.Brokers(), ",")[0])}
	res, err := admin.CreatePartitions(t.Context(), &kafkago.CreatePartitionsRequest{
		Topics: []kafkago.TopicPartitionsConfig{{Name: topic, Count: int32(count)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
}

// publishKeyed publishes n messages with distinct keys from a client opened
// now (so it knows every partition of topic) and returns their IDs; it
// fails the test unless some of them went to a partition other than 0.
func publishKeyed(t *testing.T, k *kafkatest.Cluster, topic string, n int) []string {
	t.Helper()
	pub := openURL(t, privateURL(k), false)
	defer pub.Close()
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{Key: "key-" + strconv.Itoa(i), Payload: []byte(strconv.Itoa(i))}
	}
	if err := pub.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(k.Brokers(), ",")[0])}
	out, err := admin.ListOffsets(t.Context(), &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
		topic: {kafkago.LastOffsetOf(1), kafkago.LastOffsetOf(2), kafkago.LastOffsetOf(3)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var added int64
	for _, p := range out.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("partition %d: %v", p.Partition, p.Error)
		}
		added += p.LastOffset
	}
	if added == 0 {
		t.Fatal("no message went to an added partition")
	}
	t.Logf("%d of %d messages went to the added partitions", added, n)
	ids := make([]string, n)
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// TestGroupLatestGetsAddedPartitions: a group that started at Latest gets
// the records written to partitions added to its topic later, also those
// written before the rebalance that assigns them, both to a running member
// and to one joining after the partitions were added while the group had
// no member, from the same client or from a new one (which sees the added
// partitions when the subscription starts: they get the earliest offset
// then, not StartAt).
func TestGroupLatestGetsAddedPartitions(t *testing.T) {
	for _, name := range []string{"running", "idle", "idle-new-client"} {
		running := name == "running"
		t.Run(name, func(t *testing.T) {
			k := kafkatest.StartCluster(t, 1)
			url := strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1)
			c := openURL(t, url, true)
			topic := integration.UniqueName(t, "grow")
			group := integration.UniqueName(t, "g")
			col := integration.NewCollector()
			var sub messaging.Subscription
			subscribe := func() messaging.Subscription {
				t.Helper()
				c := c
				if name == "idle-new-client" && sub != nil {
					c = openURL(t, url, true)
				}
				s, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.StartAt(messaging.Latest))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			sub = subscribe()
			// The group consumes partition 0 (it has a generation).
			first := &messaging.Message{Payload: []byte("first")}
			if err := c.Publish(t.Context(), topic, first); err != nil {
				t.Fatal(err)
			}
			col.WaitDistinct(t, 1, 30*time.Second)
			if !running {
				if err := sub.Close(); err != nil {
					t.Fatal(err)
				}
			}
			addPartitions(t, k, topic, 4)
			ids := publishKeyed(t, k, topic, 40)
			if !running {
				subscribe()
			}
			col.Wait(60*time.Second, func(*integration.Collector) bool { return len(col.Missing(ids)) == 0 })
			col.Report(t, ids)
		})
	}
}

// runningMember subscribes c to topic in group, publishes a message and
// waits until it is handled: the group then has a running member with a
// generation. It returns the subscription's collector.
func runningMember(t *testing.T, c *kafka.Client, topic, group string) *integration.Collector {
	t.Helper()
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)
	return col
}

// TestSubscribeToGroupWithMembersAfterPartitionsAdded: a client that sees
// partitions without a committed offset of a group that has a running
// member cannot commit their start (the coordinator refuses simple commits
// to a group with members): it leaves them to the group's generation, and
// Subscribe succeeds.
func TestSubscribeToGroupWithMembersAfterPartitionsAdded(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	url := strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1)
	a := openURL(t, url, true)
	topic := integration.UniqueName(t, "grown")
	group := integration.UniqueName(t, "g")
	col := runningMember(t, a, topic, group)
	addPartitions(t, k, topic, 4)
	b := openURL(t, url, true) // sees the 4 partitions, 3 without an offset
	subB, err := b.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatalf("Subscribe to a group with a running member, on partitions without an offset: %v", err)
	}
	t.Cleanup(func() { _ = subB.Close() })
}

// TestGroupJoinRefusedEndsSubscription: a join the coordinator refuses for
// good (here a session timeout below the broker's minimum) ends the
// subscription with an error naming the cause instead of being retried
// for ever.
func TestGroupJoinRefusedEndsSubscription(t *testing.T) {
	k := kafkatest.StartCluster(t, 1, kfake.GroupMinSessionTimeout(5*time.Second))
	c := openURL(t, privateURL(k), true) // session_timeout=2s
	topic := integration.UniqueName(t, "refused")
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil },
		messaging.Group(integration.UniqueName(t, "g")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case <-sub.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the subscription still runs 20s after subscribing, although the broker refuses its session timeout")
	}
	if err := sub.Err(); !errors.Is(err, kafkago.InvalidSessionTimeout) {
		t.Fatalf("subscription ended with %v, want an error wrapping %v", err, kafkago.InvalidSessionTimeout)
	} else {
		t.Logf("subscription ended: %v", err)
	}
}

// growingLeader is a plain kafka-go group member that leads the group (it
// joined first) and hands every partition to the other members. In the
// rebalance in which it first sees another member, it adds partitions to
// the topic after it read the topic's partitions for its assignment and
// before the members' generation starts.
type growingLeader struct {
	t     *testing.T
	k     *kafkatest.Cluster
	topic string
	grown chan struct{} // closed once the partitions were added
}

func (*growingLeader) ProtocolName() string      { return "range" }
func (*growingLeader) UserData() ([]byte, error) { return []byte("growing-leader"), nil }

func (l *growingLeader) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	out := kafkago.GroupMemberAssignments{}
	for _, m := range members {
		if string(m.UserData) == "growing-leader" {
			continue
		}
		ids := make([]int, len(partitions))
		for i, p := range partitions {
			ids[i] = p.ID
		}
		out[m.ID] = map[string][]int{l.topic: ids}
		select {
		case <-l.grown:
		default:
			admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(l.k.Brokers(), ",")[0])}
			res, err := admin.CreatePartitions(context.Background(), &kafkago.CreatePartitionsRequest{
				Topics: []kafkago.TopicPartitionsConfig{{Name: l.topic, Count: 4}},
			})
			if err == nil {
				err = res.Errors[l.topic]
			}
			if err != nil {
				l.t.Errorf("adding partitions: %v", err)
			}
			close(l.grown)
		}
		return out // one member: the subscription
	}
	return out
}

// TestGroupGetsPartitionsAddedDuringRebalance: partitions added to the
// topic while the group rebalances, after the leader read the topic's
// partitions for its assignment and before the generation starts, reach
// the subscription in a later generation (kafka-go's partition watcher
// counts the partitions only once the generation started, so it alone
// never rebalances for them), with the records written to them before.
func TestGroupGetsPartitionsAddedDuringRebalance(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1), true)
	topic := integration.UniqueName(t, "grow")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil { // one partition, with an offset
		t.Fatal(err)
	}
	leader := &growingLeader{t: t, k: k, topic: topic, grown: make(chan struct{})}
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: group, Brokers: strings.Split(k.Brokers(), ","), Topics: []string{topic},
		GroupBalancers:    []kafkago.GroupBalancer{leader},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Close() })
	first := make(chan struct{})
	go func() {
		defer close(first)
		_, _ = cg.Next(t.Context()) // the leader's own generation
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not join within 30s")
	}
	go func() { // take the leader's later generations
		for {
			if _, err := cg.Next(context.Background()); errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
		}
	}()
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.StartAt(messaging.Latest))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case <-leader.grown:
	case <-time.After(30 * time.Second):
		t.Fatal("no rebalance with the subscription within 30s")
	}
	ids := publishKeyed(t, k, topic, 40)
	col.Wait(30*time.Second, func(*integration.Collector) bool { return len(col.Missing(ids)) == 0 })
	col.Report(t, ids)
}

// TestGroupLatestOnAnotherTopicOfRunningGroup: a group that has a running
// member on another topic, and no offset on this one, subscribes to it at
// Latest (Subscribe cannot commit the start: the coordinator refuses
// simple commits to a group with members). A message published once
// Subscribe returned is delivered although the group's generation begins
// after it; and the start is committed, so a message published while the
// group has no member on the topic is delivered to the next subscription.
func TestGroupLatestOnAnotherTopicOfRunningGroup(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1), true)
	group := integration.UniqueName(t, "g")
	other := integration.UniqueName(t, "other")
	runningMember(t, c, other, group)
	for _, name := range []string{"published-at-once", "resubscribed"} {
		t.Run(name, func(t *testing.T) {
			topic := integration.UniqueName(t, "latest")
			col := integration.NewCollector()
			subscribe := func() messaging.Subscription {
				t.Helper()
				sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.StartAt(messaging.Latest))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Close() })
				return sub
			}
			sub := subscribe()
			if name == "resubscribed" {
				admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(k.Brokers(), ",")[0])}
				integration.Eventually(t, 20*time.Second, func() error {
					out, err := admin.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
					if err != nil {
						return err
					}
					for _, p := range out.Topics[topic] {
						if p.Error == nil && p.CommittedOffset >= 0 {
							return nil
						}
					}
					return errors.New("the group has no committed offset on the topic (its subscription is running, no message published)")
				})
				if err := sub.Close(); err != nil {
					t.Fatal(err)
				}
			}
			msgs := []*messaging.Message{{Payload: []byte("after subscribe")}}
			if err := c.Publish(t.Context(), topic, msgs...); err != nil {
				t.Fatal(err)
			}
			if name == "resubscribed" {
				subscribe()
			}
			ids := []string{msgs[0].ID}
			col.Wait(20*time.Second, func(*integration.Collector) bool { return len(col.Missing(ids)) == 0 })
			col.Report(t, ids)
		})
	}
}
