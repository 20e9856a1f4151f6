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

func BenchmarkInspect(b *testing.B) {
	c := kafkatest.Open(b)
	b.Cleanup(func() { _ = c.Close() })
	integration.BenchInspect(b, c)
}
