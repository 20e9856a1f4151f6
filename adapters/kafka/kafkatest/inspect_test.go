package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestInspectPartitions: with several partitions, Inspect reports each
// partition's offsets and a group's lag summed over them, the lag of a
// partition whose first record is not settled staying there while the
// other partitions are committed to their end.
func TestInspectPartitions(t *testing.T) {
	ctx := t.Context()
	c := kafkatest.Open(t, "partitions=3")
	defer c.Close()
	topic, group := integration.UniqueName(t, "parts"), integration.UniqueName(t, "g")
	deleteTopic(t, c, topic)
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	const n = 30
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: strconv.Itoa(i), Key: fmt.Sprint("key-", i)}
	}
	if err := c.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	st, err := c.Inspect(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Partitions) != 3 || st.Messages != messaging.KnownCount(n) || st.First != "" {
		t.Fatalf("Inspect = %+v: want 3 partitions, %d messages, offsets per partition only", st, n)
	}
	perPart := map[int]int64{}
	for _, p := range st.Partitions {
		m, _ := p.Messages.Value()
		perPart[p.Partition] = m
		if m == 0 || p.First != "0" || p.Last != strconv.FormatInt(m-1, 10) {
			t.Fatalf("partition %+v: want records from offset 0 (the keys spread over all partitions)", p)
		}
	}
	if len(st.Groups) != 1 || st.Groups[0].Backlog != messaging.KnownCount(n) || st.Groups[0].Consumers != messaging.KnownCount(0) {
		t.Fatalf("groups %+v: want %s with backlog %d and no consumers", st.Groups, group, n)
	}
	if _, known := st.Groups[0].OldestAge.Value(); !known {
		t.Fatal("oldest age unknown")
	}

	// Settle everything but partition 0, whose records fail (retried in an
	// hour): its committed offset stays at 0.
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		if strings.HasPrefix(m.Offset, "0:") {
			return messaging.RetryAfter(errors.New("not now"), time.Hour)
		}
		return nil
	}, messaging.Group(group), messaging.Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	integration.InspectUntil(t, c, topic, 30*time.Second, func(st messaging.TopicStats, _, _ time.Time) error {
		g := st.Groups[0]
		if g.Backlog != messaging.KnownCount(perPart[0]) || g.Consumers != messaging.KnownCount(1) {
			return fmt.Errorf("group %+v: want backlog %d (partition 0) and 1 consumer", g, perPart[0])
		}
		if d, known := g.OldestAge.Value(); !known || d <= 0 {
			return fmt.Errorf("oldest age %v, want the age of partition 0's first record", g.OldestAge)
		}
		return nil
	})

	topics, err := c.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(topics, topic) || !slices.IsSorted(topics) || slices.ContainsFunc(topics, func(s string) bool { return strings.HasPrefix(s, "__") }) {
		t.Errorf("Topics() = %v: want sorted, holding %s, no internal topics", topics, topic)
	}
}

// TestInspectOldestAndDeletedRecords: a group's OldestAge is that of the
// oldest record at its committed offsets over all partitions (not of the
// newest), and records deleted from a partition's start (retention,
// DeleteRecords) count neither in its messages nor in a lag whose
// committed offset is before them.
func TestInspectOldestAndDeletedRecords(t *testing.T) {
	ctx := t.Context()
	c := kafkatest.Open(t, "partitions=2")
	topic, group := integration.UniqueName(t, "oldest"), integration.UniqueName(t, "g")
	deleteTopic(t, c, topic)
	if err := c.Provision(ctx, topic, group); err != nil { // commits offset 0 on both partitions
		t.Fatal(err)
	}
	// Two keys in different partitions (murmur2, as Publish places them).
	bal := kafkago.Murmur2Balancer{}
	keyOld, keyNew := "old", ""
	for i := 0; keyNew == ""; i++ {
		if k := "new" + strconv.Itoa(i); bal.Balance(kafkago.Message{Key: []byte(k)}, 0, 1) != bal.Balance(kafkago.Message{Key: []byte(keyOld)}, 0, 1) {
			keyNew = k
		}
	}
	partOld := bal.Balance(kafkago.Message{Key: []byte(keyOld)}, 0, 1)
	now := time.Now()
	oldTime, newTime := now.Add(-2*time.Hour), now.Add(-time.Minute)
	var msgs []*messaging.Message
	for i := range 5 {
		msgs = append(msgs, &messaging.Message{ID: "old" + strconv.Itoa(i), Key: keyOld, Time: oldTime})
	}
	msgs = append(msgs, &messaging.Message{ID: "new", Key: keyNew, Time: newTime})
	if err := c.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}

	// Delete the first 3 records of the old key's partition.
	kc, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(kafkatest.Broker.Endpoint(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = int32(partOld), 3
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	shards := kc.RequestSharded(ctx, req)
	for _, sh := range shards {
		if sh.Err != nil {
			t.Fatalf("DeleteRecords: %v", sh.Err)
		}
		for _, tr := range sh.Resp.(*kmsg.DeleteRecordsResponse).Topics {
			for _, pr := range tr.Partitions {
				if pr.ErrorCode != 0 {
					t.Fatalf("DeleteRecords partition %d: error code %d", pr.Partition, pr.ErrorCode)
				}
			}
		}
	}

	st, err := c.Inspect(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Partitions {
		if p.Partition == partOld && (p.Messages != messaging.KnownCount(2) || p.First != "3" || p.Last != "4") {
			t.Errorf("partition %+v after deleting offsets 0-2: want 2 messages, first 3, last 4", p)
		}
	}
	if st.Messages != messaging.KnownCount(3) {
		t.Errorf("messages %v, want 3 (2 left in partition %d, 1 in the other)", st.Messages, partOld)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != group {
		t.Fatalf("groups %+v, want %s only", st.Groups, group)
	}
	g := st.Groups[0]
	if g.Backlog != messaging.KnownCount(3) {
		t.Errorf("backlog %v, want 3: the records deleted before the committed offset are not lag", g.Backlog)
	}
	// The oldest record at a committed offset is the old key's (2h old),
	// not the other partition's (1 min old).
	if d, known := g.OldestAge.Value(); !known || d < 2*time.Hour-time.Minute || d > 2*time.Hour+10*time.Minute {
		t.Errorf("oldest age %v, want about 2h (the old key's partition)", g.OldestAge)
	}

	// A group with an offset on one partition only: its backlog is unknown.
	half := integration.UniqueName(t, "half")
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(kafkatest.Broker.Endpoint(t), ",")...), Timeout: 10 * time.Second}
	resp, err := admin.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
		GroupID: half, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{topic: {{Partition: partOld, Offset: 4}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("commit %s partition %d: %v", half, p.Partition, p.Error)
		}
	}
	if st, err = c.Inspect(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for _, g := range st.Groups {
		if g.Group != half {
			continue
		}
		if v, known := g.Backlog.Value(); known {
			t.Errorf("group %s with an offset on partition %d only: backlog %d, want unknown", half, partOld, v)
		}
		return
	}
	t.Errorf("groups %+v: %s missing", st.Groups, half)
}

// TestInspectCountsIdleMembers: Consumers counts the group's members
// subscribed to the topic, also one that the assignment left without a
// partition (two members, one partition).
func TestInspectCountsIdleMembers(t *testing.T) {
	c := kafkatest.Open(t)
	topic, group := integration.UniqueName(t, "idle"), integration.UniqueName(t, "g")
	deleteTopic(t, c, topic)
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m := kafkatest.Open(t)
		sub, err := m.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil }, messaging.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	integration.InspectUntil(t, c, topic, 30*time.Second, func(st messaging.TopicStats, _, _ time.Time) error {
		if len(st.Groups) != 1 || st.Groups[0].Consumers != messaging.KnownCount(2) {
			return fmt.Errorf("groups %+v: want %s with 2 consumers (one of them without a partition)", st.Groups, group)
		}
		return nil
	})
}

func BenchmarkInspect(b *testing.B) {
	c := kafkatest.Open(b)
	integration.BenchInspect(b, c)
}
