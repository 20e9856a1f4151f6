package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestInspectCoreUnsupported: core NATS keeps nothing to inspect or list.
func TestInspectCoreUnsupported(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	if _, err := c.Inspect(t.Context(), "orders"); !errors.Is(err, messaging.ErrUnsupported) {
		t.Errorf("Inspect in core mode: %v, want ErrUnsupported", err)
	}
	if _, err := c.Topics(t.Context()); !errors.Is(err, messaging.ErrUnsupported) {
		t.Errorf("Topics in core mode: %v, want ErrUnsupported", err)
	}
}

// TestTopicsListsCreatedStreams: Topics lists the topics whose streams the
// adapter created (under its stream prefix), not other streams.
func TestTopicsListsCreatedStreams(t *testing.T) {
	ctx := t.Context()
	prefix := integration.UniqueName(t, "P") + "_"
	c := natstest.Open(t, natsadapter.WithStreamPrefix(prefix))
	topic := integration.UniqueName(t, "listed.topic")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	foreign := integration.UniqueName(t, "foreign")
	if _, err := c.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: foreign, Subjects: []string{foreign}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.JetStream().DeleteStream(context.Background(), foreign) })
	got, err := c.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{topic}) {
		t.Errorf("Topics() = %v, want [%s]", got, topic)
	}
}

// TestInspectExistingStreams: with WithExistingStreams one stream holds
// several topics; Inspect counts the topic's own messages and reports the
// stream-wide figures (bytes, sequences) as unknown, and TopicExists tells
// whether a stream captures the subject.
func TestInspectExistingStreams(t *testing.T) {
	ctx := t.Context()
	c := natstest.Open(t, natsadapter.WithExistingStreams())
	base := integration.UniqueName(t, "shared")
	a, b := base+".a", base+".b"
	stream := integration.UniqueName(t, "SHARED")
	if _, err := c.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{a, b}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.JetStream().DeleteStream(context.Background(), stream) })
	group := integration.UniqueName(t, "g")
	if err := c.Provision(ctx, a, group); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, a, &messaging.Message{ID: "1"}, &messaging.Message{ID: "2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, b, &messaging.Message{ID: "3"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Inspect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != messaging.KnownCount(2) || st.Bytes != (messaging.Count{}) || st.First != "" || st.Last != "" {
		t.Errorf("Inspect(%s) = %+v: want 2 messages, bytes and sequences unknown", a, st)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != group || st.Groups[0].Backlog != messaging.KnownCount(2) {
		t.Errorf("groups = %+v, want %s with a backlog of 2", st.Groups, group)
	}
	if _, known := st.Groups[0].OldestAge.Value(); !known {
		t.Errorf("oldest age unknown")
	}
	if _, err := c.Inspect(ctx, base+".none"); !errors.Is(err, messaging.ErrTopicNotFound) {
		t.Errorf("Inspect(subject no stream captures): %v, want ErrTopicNotFound", err)
	}
	// TopicExists is whether a stream captures the subject.
	for topic, want := range map[string]bool{a: true, b: true, base + ".none": false} {
		if got, err := c.TopicExists(ctx, topic); err != nil || got != want {
			t.Errorf("TopicExists(%s) = %v, %v; want %v", topic, got, err, want)
		}
	}
}

// TestInspectGroupsOnlyAndRedeliveries: Inspect lists the topic's groups
// only, not the ephemeral consumers of a live group-less subscription and a
// Read, and counts a message delivered again and still unsettled in
// Redeliveries (the conformance suite sees none redelivered).
func TestInspectGroupsOnlyAndRedeliveries(t *testing.T) {
	ctx := t.Context()
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "insgroups")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "r"}); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	sub, err := c.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		if m.Attempt == 1 {
			return errors.New("fail the first attempt: redelivered at once")
		}
		close(held)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, messaging.Group(group), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	t.Cleanup(func() { close(release) }) // before the subscription closes
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("message r not redelivered within 10s")
	}
	nop := func(context.Context, *messaging.Message) error { return nil }
	eph, err := c.Subscribe(ctx, topic, nop, messaging.StartAt(messaging.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eph.Close() })
	read, err := c.Read(ctx, topic, messaging.Earliest, nop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = read.Close() })
	integration.InspectUntil(t, c, topic, 10*time.Second, func(st messaging.TopicStats, _, _ time.Time) error {
		if len(st.Groups) != 1 || st.Groups[0].Group != group {
			return fmt.Errorf("groups %+v, want only %s", st.Groups, group)
		}
		g := st.Groups[0]
		if g.Redeliveries != messaging.KnownCount(1) || g.InFlight != messaging.KnownCount(1) || g.Backlog != messaging.KnownCount(0) {
			return fmt.Errorf("group %+v, want 1 redelivery, 1 in flight, backlog 0", g)
		}
		return nil
	})
}

// TestInspectOldestAgeAfterDelivered: a group's OldestAge is the age of the
// first message after those it was delivered, not of the last one it was
// delivered (the conformance case publishes all its messages at once, so
// their ages do not tell them apart): with an old message settled and a new
// one published two seconds later, it is the new one's age.
func TestInspectOldestAgeAfterDelivered(t *testing.T) {
	ctx := t.Context()
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "insage")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "old"}); err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
		handled <- struct{}{}
		return nil
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("message old not handled within 10s")
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := c.JetStream().Stream(ctx, c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The scenario needs the two messages' ages apart: the new one is
	// published once the old one is two seconds old.
	select {
	case <-time.After(time.Until(old.Time.Add(2 * time.Second))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	published := time.Now()
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "new"}); err != nil {
		t.Fatal(err)
	}
	integration.InspectUntil(t, c, topic, 10*time.Second, func(st messaging.TopicStats, _, end time.Time) error {
		if len(st.Groups) != 1 || st.Groups[0].Backlog != messaging.KnownCount(1) || st.Groups[0].InFlight != messaging.KnownCount(0) {
			return fmt.Errorf("groups %+v, want %s with a backlog of 1 and nothing in flight", st.Groups, group)
		}
		age, known := st.Groups[0].OldestAge.Value()
		if limit := end.Sub(published) + 500*time.Millisecond; !known || age > limit {
			return fmt.Errorf("oldest age %v, want at most %v (the new message's; the old one is %v old)", st.Groups[0].OldestAge, limit, end.Sub(old.Time))
		}
		return nil
	})
}

func BenchmarkInspect(b *testing.B) { integration.BenchInspect(b, natstest.Open(b)) }
