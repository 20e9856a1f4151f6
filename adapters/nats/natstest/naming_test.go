package natstest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestNamesDoNotCollide: groups "g.x" and "g_x" of one topic are two groups
// (each gets every message), and topics "t.a" and "t_a" two topics (a
// message of one does not reach the other): JetStream names map '.' to '~'.
func TestNamesDoNotCollide(t *testing.T) {
	c := natstest.Open(t)
	base := integration.UniqueName(t, "inj")
	dotted, underscored := base+".a", base+"_a"
	for _, topic := range []string{dotted, underscored} {
		t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	}
	g := integration.UniqueName(t, "g")
	a, b, other := integration.NewCollector(), integration.NewCollector(), integration.NewCollector()
	for _, s := range []struct {
		topic, group string
		col          *integration.Collector
	}{{dotted, g + ".x", a}, {dotted, g + "_x", b}, {underscored, g + ".x", other}} {
		sub, err := c.Subscribe(t.Context(), s.topic, s.col.Handler(), messaging.Group(s.group))
		if err != nil {
			t.Fatalf("subscribe %s/%s: %v", s.topic, s.group, err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	var ids []string
	for i := range 20 {
		m := messaging.NewMessage([]byte{byte(i)})
		if err := c.Publish(t.Context(), dotted, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	canary := messaging.NewMessage([]byte("canary"))
	if err := c.Publish(t.Context(), underscored, canary); err != nil {
		t.Fatal(err)
	}
	a.WaitDistinct(t, len(ids), 30*time.Second)
	b.WaitDistinct(t, len(ids), 30*time.Second)
	other.WaitDistinct(t, 1, 30*time.Second)
	a.Report(t, ids)
	b.Report(t, ids)
	if other.Distinct() != 1 || other.Count(canary.ID) != 1 {
		t.Fatalf("topic %s got %d messages, want only its own canary", underscored, other.Distinct())
	}
	if s1, s2 := c.StreamName(dotted), c.StreamName(underscored); s1 == s2 || !strings.Contains(s1, "~") {
		t.Errorf("stream names %q and %q", s1, s2)
	}
}

// TestLegacyNamesStillUsed: a stream and a consumer created under the old
// mapping ('.' -> '_') by an earlier version keep being used for their
// topic and group, so upgrading loses no message.
func TestLegacyNamesStillUsed(t *testing.T) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "legacy") + ".t"
	group := integration.UniqueName(t, "g") + ".x"
	legacyStream := strings.ReplaceAll(topic, ".", "_")
	js := c.JetStream()
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: legacyStream, Subjects: []string{topic}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), legacyStream) })
	old := messaging.NewMessage([]byte("published before the upgrade"))
	if err := c.Publish(t.Context(), topic, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), c.StreamName(topic)); err == nil {
		t.Fatalf("a new stream %s was created beside the legacy one", c.StreamName(topic))
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	col.WaitDistinct(t, 1, 30*time.Second)
	col.Report(t, []string{old.ID})
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), legacyStream); err == nil {
		t.Error("DeleteTopic left the legacy stream")
	}
}

// TestForeignStreamOfTheSameName: a stream that has the name the Client
// would give a topic's stream but captures other subjects (made by someone
// else) is not used: Publish and Subscribe fail with ErrInvalidTopic.
func TestForeignStreamOfTheSameName(t *testing.T) {
	ctx := t.Context()
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "taken")
	other := integration.UniqueName(t, "other")
	if _, err := c.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: c.StreamName(topic), Subjects: []string{other}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.JetStream().DeleteStream(context.Background(), c.StreamName(topic)) })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "x"}); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("Publish to %s: %v, want ErrInvalidTopic", topic, err)
	}
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error { return nil }, messaging.Group("g"))
	if err == nil {
		_ = sub.Close()
	}
	if !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("Subscribe to %s: %v, want ErrInvalidTopic", topic, err)
	}
}
