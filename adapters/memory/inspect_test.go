package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// group returns the stats of group g in st, failing when it is not there.
func group(t *testing.T, st messaging.TopicStats, g string) messaging.GroupStats {
	t.Helper()
	for _, gs := range st.Groups {
		if gs.Group == g {
			return gs
		}
	}
	t.Fatalf("no group %q in %+v", g, st.Groups)
	return messaging.GroupStats{}
}

// known returns c's value, failing when it is unknown.
func known(t *testing.T, what string, c messaging.Count) int64 {
	t.Helper()
	n, ok := c.Value()
	if !ok {
		t.Fatalf("%s unknown", what)
	}
	return n
}

// wantGroup checks a group's counts (every one must be known).
func wantGroup(t *testing.T, gs messaging.GroupStats, backlog, inFlight, redeliveries, consumers int64) {
	t.Helper()
	got := [4]int64{known(t, "backlog", gs.Backlog), known(t, "in flight", gs.InFlight), known(t, "redeliveries", gs.Redeliveries), known(t, "consumers", gs.Consumers)}
	if want := [4]int64{backlog, inFlight, redeliveries, consumers}; got != want {
		t.Errorf("group %s: backlog, in flight, redeliveries, consumers = %v, want %v", gs.Group, got, want)
	}
}

// wantAge checks that the age is known and within [lo, hi].
func wantAge(t *testing.T, gs messaging.GroupStats, lo, hi time.Duration) {
	t.Helper()
	d, ok := gs.OldestAge.Value()
	if !ok || d < lo || d > hi {
		t.Errorf("group %s: oldest age %v (known %v), want within [%v, %v]", gs.Group, d, ok, lo, hi)
	}
}

// inspectUntil inspects topic until cond holds: settlements reach the
// broker asynchronously (the engine batches them), so a figure that depends
// on one converges rather than changing at once.
func inspectUntil(t *testing.T, c messaging.Inspector, topic string, cond func(messaging.TopicStats) bool) messaging.TopicStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.Inspect(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never reached the expected state; last: %+v", st)
		}
		time.Sleep(time.Millisecond) // polling the broker's state, not waiting for time to pass
	}
}

// TestInspectFigures: ten messages published, a group holding three in its
// handlers and having acknowledged two, a provisioned group that never
// consumed and a group-less subscription; every figure is exact, and a
// second client of the broker sees the same.
func TestInspectFigures(t *testing.T) {
	b, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	c, watcher := mustNewClient(t, b), mustNewClient(t, b)
	t.Cleanup(func() { _ = c.Close(); _ = watcher.Close() })
	ctx := t.Context()
	const topic, n = "orders", 10
	if err := c.Provision(ctx, topic, "idle"); err != nil {
		t.Fatal(err)
	}
	var size int64
	t0 := time.Now()
	for i := range n {
		m := messaging.NewMessage(fmt.Appendf(nil, "order %d", i))
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Fatal(err)
		}
		size += int64(m.Size()) // with the ID Publish gave it
	}
	t1 := time.Now()

	entered := make(chan *messaging.Message, n)
	release := make(chan struct{})
	hold := func(ctx context.Context, m *messaging.Message) error {
		entered <- m
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sub, err := c.Subscribe(ctx, topic, hold, messaging.Group("work"), messaging.Concurrency(3), messaging.Prefetch(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	t.Cleanup(func() { close(release) }) // runs first: the held handlers return
	// A subscription without a group has a private group, not listed.
	tail, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tail.Close() })
	for range 3 {
		<-entered
	}

	before := time.Now()
	st, err := watcher.Inspect(ctx, topic)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if st.Topic != topic || st.Broker != "mem" || st.First != "0" || st.Last != "9" || len(st.Partitions) != 0 {
		t.Errorf("topic, broker, first, last, partitions = %q %q %q %q %v", st.Topic, st.Broker, st.First, st.Last, st.Partitions)
	}
	if got := known(t, "messages", st.Messages); got != n {
		t.Errorf("messages %d, want %d", got, n)
	}
	if got := known(t, "bytes", st.Bytes); got != size {
		t.Errorf("bytes %d, want %d", got, size)
	}
	if names := []string{st.Groups[0].Group, st.Groups[len(st.Groups)-1].Group}; len(st.Groups) != 2 || !slices.Equal(names, []string{"idle", "work"}) {
		t.Fatalf("groups %+v, want idle and work", st.Groups)
	}
	wantGroup(t, group(t, st, "work"), n-3, 3, 0, 1)
	wantGroup(t, group(t, st, "idle"), n, 0, 0, 0)
	// Both groups' oldest undelivered message is one of those published
	// between t0 and t1 (the fourth, and the first).
	wantAge(t, group(t, st, "work"), before.Sub(t1), after.Sub(t0))
	wantAge(t, group(t, st, "idle"), before.Sub(t1), after.Sub(t0))

	// Two handlers acknowledge; the subscription takes two more (which may
	// wait in the pool behind the handler still held: the broker sees them
	// delivered all the same).
	release <- struct{}{}
	release <- struct{}{}
	st = inspectUntil(t, watcher, topic, func(st messaging.TopicStats) bool {
		in, _ := group(t, st, "work").InFlight.Value()
		backlog, _ := group(t, st, "work").Backlog.Value()
		return in == 3 && backlog == n-5
	})
	wantGroup(t, group(t, st, "work"), n-5, 3, 0, 1)
	wantGroup(t, group(t, st, "idle"), n, 0, 0, 0)
}

// TestInspectNacksAndRedeliveries: a message nacked with a long delay is
// backlog again (not in flight) and sets the oldest age; one redelivered at
// once counts as a redelivery.
func TestInspectNacksAndRedeliveries(t *testing.T) {
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	const topic = "jobs"
	t0 := time.Now()
	if err := c.Publish(ctx, topic, messaging.NewMessage([]byte("later")), messaging.NewMessage([]byte("twice"))); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	handled := make(chan string, 4)
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		defer func() { handled <- fmt.Sprintf("%s %d", m.Payload, m.Attempt) }()
		switch {
		case string(m.Payload) == "later":
			return messaging.RetryAfter(errors.New("not now"), time.Hour)
		case m.Attempt == 1:
			return messaging.RetryAfter(errors.New("again"), 0)
		}
		return nil
	}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	var got []string
	for range 3 {
		got = append(got, <-handled)
	}
	slices.Sort(got)
	if want := []string{"later 1", "twice 1", "twice 2"}; !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
	before := time.Now()
	st := inspectUntil(t, c, topic, func(st messaging.TopicStats) bool {
		in, _ := group(t, st, "g").InFlight.Value()
		return in == 0
	})
	after := time.Now()
	gs := group(t, st, "g")
	wantGroup(t, gs, 1, 0, 1, 1)
	wantAge(t, gs, before.Sub(t1), after.Sub(t0))
}

// TestInspectTopicsAndErrors: the topics listed, a topic without groups,
// retention, and the errors.
func TestInspectTopicsAndErrors(t *testing.T) {
	c := mustNew(t, memory.WithMaxLen(3))
	ctx := t.Context()
	if err := c.Provision(ctx, "b.provisioned", "g"); err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for i := range 5 {
		m := messaging.NewMessage(fmt.Appendf(nil, "%d", i*1000))
		if err := c.Publish(ctx, "a.published", m); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, int64(m.Size()))
	}
	names, err := c.Topics(ctx)
	if err != nil || !slices.Equal(names, []string{"a.published", "b.provisioned"}) {
		t.Fatalf("Topics = %v, %v", names, err)
	}

	st, err := c.Inspect(ctx, "a.published")
	if err != nil {
		t.Fatal(err)
	}
	if st.Groups == nil || len(st.Groups) != 0 {
		t.Errorf("groups of a topic without any: %#v, want empty", st.Groups)
	}
	if known(t, "messages", st.Messages) != 3 || known(t, "bytes", st.Bytes) != sizes[2]+sizes[3]+sizes[4] || st.First != "2" || st.Last != "4" {
		t.Errorf("after retention: messages %v bytes %v first %q last %q", st.Messages, st.Bytes, st.First, st.Last)
	}
	st, err = c.Inspect(ctx, "b.provisioned")
	if err != nil {
		t.Fatal(err)
	}
	if known(t, "messages", st.Messages) != 0 || known(t, "bytes", st.Bytes) != 0 || st.First != "" || st.Last != "" {
		t.Errorf("empty topic: messages %v bytes %v first %q last %q", st.Messages, st.Bytes, st.First, st.Last)
	}
	gs := group(t, st, "g")
	wantGroup(t, gs, 0, 0, 0, 0)
	wantAge(t, gs, 0, 0)

	if _, err := c.Inspect(ctx, "never.used"); !errors.Is(err, messaging.ErrTopicNotFound) {
		t.Errorf("Inspect of an unknown topic: %v, want ErrTopicNotFound", err)
	}
	for _, bad := range []string{"", "bad topic"} {
		if _, err := c.Inspect(ctx, bad); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("Inspect(%q): %v, want ErrInvalidTopic", bad, err)
		}
	}
	if names, err := c.Topics(ctx); err != nil || slices.Contains(names, "never.used") {
		t.Errorf("Inspect created the topic it was asked about: %v, %v", names, err)
	}
	if err := c.DeleteTopic(ctx, "a.published"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inspect(ctx, "a.published"); !errors.Is(err, messaging.ErrTopicNotFound) {
		t.Errorf("Inspect of a deleted topic: %v, want ErrTopicNotFound", err)
	}
	if names, err := c.Topics(ctx); err != nil || !slices.Equal(names, []string{"b.provisioned"}) {
		t.Errorf("Topics after delete = %v, %v", names, err)
	}
	_ = c.Close()
	if _, err := c.Inspect(ctx, "b.provisioned"); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Inspect after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Topics(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Topics after Close: %v, want ErrClosed", err)
	}
}

// TestInspectBacklogAfterRetention: a group that had not reached the
// messages WithMaxLen dropped skips them (see WithMaxLen), so its backlog
// counts the retained messages only, and its oldest age is that of the
// oldest retained one.
func TestInspectBacklogAfterRetention(t *testing.T) {
	c := mustNew(t, memory.WithMaxLen(3))
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	const topic = "retained-backlog"
	if err := c.Provision(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range 5 {
		if err := c.Publish(ctx, topic, messaging.NewMessage(fmt.Appendf(nil, "%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.Inspect(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	gs := group(t, st, "g")
	wantGroup(t, gs, 3, 0, 0, 0)
	wantAge(t, gs, 0, time.Since(t0))
}
