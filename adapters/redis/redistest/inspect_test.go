package redistest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// TestTopicsPrefixAndHashTag: Topics lists the streams under the client's
// prefix, named as topics (prefix and hash tag braces removed), and nothing
// else.
func TestTopicsPrefixAndHashTag(t *testing.T) {
	ctx := t.Context()
	for _, tag := range []bool{false, true} {
		prefix := integration.UniqueName(t, "p") + ":"
		c := redistest.Open(t, redisadapter.WithPrefix(prefix), redisadapter.WithHashTag(tag))
		other := redistest.Open(t, redisadapter.WithPrefix(integration.UniqueName(t, "q")+":"))
		a, b := integration.UniqueName(t, "a"), integration.UniqueName(t, "b.c")
		for _, topic := range []string{a, b} {
			if err := c.Publish(ctx, topic, &messaging.Message{Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
		}
		notMine := integration.UniqueName(t, "other")
		if err := other.Publish(ctx, notMine, &messaging.Message{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), notMine) })
		got, err := c.Topics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{a, b}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("hash tag %v: Topics() = %v, want %v", tag, got, want)
		}
	}
}

// TestInspectLagUnknownAfterDelete: after an entry is deleted from the
// middle of the stream (XDEL), Redis cannot tell a group's lag: the backlog
// is unknown, not a wrong number; the oldest undelivered entry is still
// found.
func TestInspectLagUnknownAfterDelete(t *testing.T) {
	ctx := t.Context()
	c := redistest.Open(t)
	topic, group := integration.UniqueName(t, "xdel"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	msgs := []*messaging.Message{{ID: "1"}, {ID: "2"}, {ID: "3"}}
	if err := c.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	entries, err := c.Redis().XRange(ctx, c.StreamKey(topic), "-", "+").Result()
	if err != nil || len(entries) != 3 {
		t.Fatalf("XRANGE: %d entries, %v", len(entries), err)
	}
	if err := c.Redis().XDel(ctx, c.StreamKey(topic), entries[1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Inspect(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Groups) != 1 || st.Messages != messaging.KnownCount(2) {
		t.Fatalf("Inspect = %+v, want 2 messages and one group", st)
	}
	g := st.Groups[0]
	if _, known := g.Backlog.Value(); known {
		t.Errorf("backlog = %v after XDEL, want unknown", g.Backlog)
	}
	if _, known := g.OldestAge.Value(); !known {
		t.Errorf("oldest age unknown, want the age of entry %s", entries[0].ID)
	}
}

// TestInspectBacklogAfterTrim: Redis's lag (entries added minus entries
// read) still counts entries trimmed away (XTRIM, or the adapter's maxlen=
// and max_age=) before the group got to them; the backlog is what is left
// to deliver.
func TestInspectBacklogAfterTrim(t *testing.T) {
	ctx := t.Context()
	c := redistest.Open(t)
	topic, group := integration.UniqueName(t, "trim"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	key := c.StreamKey(topic)
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := c.Publish(ctx, topic, &messaging.Message{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	backlog := func(when string, want int64) {
		t.Helper()
		st, err := c.Inspect(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Groups) != 1 {
			t.Fatalf("%s: Inspect = %+v, want one group", when, st)
		}
		if n, known := st.Groups[0].Backlog.Value(); !known || n != want {
			t.Errorf("%s: backlog = %v (%v messages in the stream), want %d", when, st.Groups[0].Backlog, st.Messages, want)
		}
	}
	publish(0, 5)
	read, err := c.Redis().XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{key, ">"}, Count: 5, Block: -1}).Result()
	if err != nil || len(read) != 1 || len(read[0].Messages) != 5 {
		t.Fatalf("XREADGROUP: %v, %v", read, err)
	}
	publish(5, 10)
	// Trimmed entries the group had read: the lag holds.
	if err := c.Redis().XTrimMaxLen(ctx, key, 7).Err(); err != nil {
		t.Fatal(err)
	}
	backlog("5 of 10 read, trimmed to the last 7", 5)
	// Trimmed past the group's last-delivered entry.
	if err := c.Redis().XTrimMaxLen(ctx, key, 2).Err(); err != nil {
		t.Fatal(err)
	}
	backlog("5 of 10 read, trimmed to the last 2", 2)
}

// TestClusterTopics: in cluster mode Topics scans every master, so topics
// whose keys sit in different slots (on different nodes) are all listed.
func TestClusterTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: startPrivateCluster(t)})
	t.Cleanup(func() { _ = cc.Close() })
	c := mustNew(t, cc)
	ctx := t.Context()
	var want []string
	for i := range 12 {
		topic := fmt.Sprintf("t%d", i)
		if err := c.Publish(ctx, topic, &messaging.Message{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		want = append(want, topic)
	}
	masters := map[string]bool{}
	for _, topic := range want {
		slot := cc.ClusterKeySlot(ctx, c.StreamKey(topic)).Val()
		masters[fmt.Sprint(slot*3/16384)] = true // the slot ranges redis-cli gives three masters
	}
	if len(masters) < 2 {
		t.Fatalf("the topics' keys all fall to one node: pick others")
	}
	slices.Sort(want)
	got, err := c.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Topics() = %v, want %v", got, want)
	}
	st, err := c.Inspect(ctx, want[0])
	if err != nil || st.Messages != messaging.KnownCount(1) {
		t.Errorf("Inspect(%s) = %+v, %v: want 1 message", want[0], st, err)
	}
}

func BenchmarkInspect(b *testing.B) { integration.BenchInspect(b, redistest.Open(b)) }
