package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// InspectGaps lists the figures of messaging.TopicStats an adapter's
// Inspect cannot report (they must be unknown), and how its backlog is
// counted. The zero value means every figure is known and exact (the
// memory adapter).
type InspectGaps struct {
	Messages, Bytes, Offsets, InFlight, Redeliveries, Consumers bool
	// OldestAge: the age of the oldest undelivered message is unknown
	// while the backlog is not zero (it is known and zero otherwise).
	OldestAge bool
	// BacklogCountsInFlight: the broker knows commits, not deliveries, so
	// the backlog counts delivered messages not yet settled (Kafka).
	BacklogCountsInFlight bool
	// Partitioned: First and Last are per partition (TopicStats.Partitions).
	Partitioned bool
}

// InspectGapsByBroker are the gaps of each adapter's Inspect by the scheme
// it reports in TopicStats.Broker (RabbitMQ without its management API);
// a broker not listed reports everything (the memory adapter).
var InspectGapsByBroker = map[string]InspectGaps{
	"redis": {Bytes: true, Redeliveries: true},
	// Groups are pull consumers: the server counts pull requests, not
	// subscriptions.
	"nats":  {Consumers: true},
	"kafka": {Bytes: true, InFlight: true, Redeliveries: true, BacklogCountsInFlight: true, Partitioned: true},
	// AMQP gives a queue's ready messages and consumers only.
	"amqp": {Messages: true, Bytes: true, Offsets: true, InFlight: true, OldestAge: true, Redeliveries: true},
}

// RunInspect runs the suite's Inspect case alone against h (for an adapter
// configured in a way its harness is not, such as RabbitMQ with its
// management API).
func RunInspect(t *testing.T, h Harness) {
	h = h.withDefaults()
	probe := h.client(t)
	if _, ok := probe.(messaging.Inspector); !ok {
		t.Skipf("%s: %T does not implement messaging.Inspector", h.Name, probe)
	}
	newSuite(t, h, probe.Capabilities()).inspect(t)
}

// inspect: the broker's view of a topic, read by Inspect, after publishing
// N messages, with group A having settled K and holding P (one in its
// handler, the others fetched: Prefetch P makes what the broker delivered
// exact), group B provisioned and never consumed, and group C done with
// everything. Also a topic without groups, a missing topic and bad names.
func (s *suite) inspect(t *testing.T) {
	const (
		n = 12 // published
		k = 3  // settled by group A
		p = 4  // held by group A (its Prefetch)
	)
	ins := s.c.(messaging.Inspector)
	var gaps InspectGaps
	gapsOf := func(st messaging.TopicStats) {
		if s.h.InspectGaps != nil {
			gaps = *s.h.InspectGaps
		} else {
			gaps = InspectGapsByBroker[st.Broker]
		}
	}
	ctx := t.Context()
	for _, bad := range []string{"", "bad topic", "a..b"} {
		if _, err := ins.Inspect(ctx, bad); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Fatalf("Inspect(%q): %v, want ErrInvalidTopic", bad, err)
		}
	}
	missing := UniqueName(t, "missing")
	_, err := ins.Inspect(ctx, missing)
	if s.h.InspectUnsupported {
		if !errors.Is(err, messaging.ErrUnsupported) {
			t.Fatalf("Inspect(%s) where the harness declares it unsupported: %v, want ErrUnsupported", missing, err)
		}
		t.Skipf("%s: Inspect is not supported here: %v", s.h.Name, err)
	}
	if !errors.Is(err, messaging.ErrTopicNotFound) {
		t.Fatalf("Inspect(missing topic): %v, want ErrTopicNotFound", err)
	}
	if _, err := ins.Inspect(ctx, missing); !errors.Is(err, messaging.ErrTopicNotFound) {
		t.Fatalf("Inspect(missing topic) again (Inspect must not create it): %v, want ErrTopicNotFound", err)
	}

	ga, gb, gc := s.group("ia"), s.group("ib"), s.group("ic")
	s.provision(ga, gb, gc)
	pubStart := time.Now()
	s.publish(s.c, numbered("ins", n)...)
	pubEnd := time.Now()

	var doneC sync.Once
	allC := make(chan struct{})
	var seenC atomic.Int32
	s.subscribe(ctx, s.c, func(context.Context, *messaging.Message) error {
		if seenC.Add(1) >= n {
			doneC.Do(func() { close(allC) })
		}
		return nil
	}, messaging.Group(gc))

	release := make(chan struct{})
	var seenA atomic.Int32
	s.subscribe(ctx, s.c, func(ctx context.Context, _ *messaging.Message) error {
		if seenA.Add(1) <= k {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, messaging.Group(ga), messaging.Concurrency(1), messaging.Prefetch(p))
	t.Cleanup(func() { close(release) }) // before the subscriptions close
	select {
	case <-allC:
	case <-time.After(s.h.Timeout):
		t.Fatalf("group C received %d of %d messages after %v", seenC.Load(), n, s.h.Timeout)
	}

	slack := s.h.TimeGap // timestamp resolution and clock reading
	want := func(st messaging.TopicStats, start, end time.Time) error {
		gapsOf(st)
		var errs []error
		check := func(what string, c messaging.Count, gap bool, v int64) {
			got, known := c.Value()
			switch {
			case gap && known:
				errs = append(errs, fmt.Errorf("integration: %s = %d, want unknown (%s cannot tell)", what, got, s.h.Name))
			case !gap && (!known || got != v):
				errs = append(errs, fmt.Errorf("integration: %s = %v, want %d", what, c, v))
			}
		}
		age := func(what string, a messaging.Age, gap bool) {
			d, known := a.Value()
			if gap {
				if known {
					errs = append(errs, fmt.Errorf("integration: %s = %v, want unknown", what, d))
				}
				return
			}
			lo, hi := start.Sub(pubEnd)-slack, end.Sub(pubStart)+slack
			if !known || d < lo || d > hi {
				errs = append(errs, fmt.Errorf("integration: %s = %v, want between %v and %v", what, a, max(lo, 0), hi))
			}
		}
		if st.Topic != s.topic || st.Broker == "" {
			errs = append(errs, fmt.Errorf("integration: topic %q broker %q, want %q and the scheme", st.Topic, st.Broker, s.topic))
		}
		if gaps.Partitioned {
			var sum int64
			for _, ps := range st.Partitions {
				v, known := ps.Messages.Value()
				if !known {
					errs = append(errs, fmt.Errorf("integration: partition %d: messages unknown", ps.Partition))
				}
				sum += v
			}
			if len(st.Partitions) == 0 || sum != n {
				errs = append(errs, fmt.Errorf("integration: partitions %+v: want messages summing to %d", st.Partitions, n))
			}
		}
		check("messages", st.Messages, gaps.Messages, n)
		if v, known := st.Bytes.Value(); known == gaps.Bytes || known && v <= 0 {
			errs = append(errs, fmt.Errorf("integration: bytes = %v, want %s", st.Bytes, map[bool]string{true: "unknown", false: "known and > 0"}[gaps.Bytes]))
		}
		if hasOffsets := st.First != "" && st.Last != ""; hasOffsets == (gaps.Offsets || gaps.Partitioned) {
			errs = append(errs, fmt.Errorf("integration: first %q last %q: offsets %s", st.First, st.Last, map[bool]string{true: "not expected", false: "missing"}[hasOffsets]))
		}
		names := make([]string, len(st.Groups))
		for i, g := range st.Groups {
			names[i] = g.Group
		}
		if wantNames := []string{ga, gb, gc}; !slices.Equal(names, sortedCopy(wantNames)) {
			errs = append(errs, fmt.Errorf("integration: groups %v, want %v", names, sortedCopy(wantNames)))
			return errors.Join(errs...)
		}
		for _, g := range st.Groups {
			switch g.Group {
			case ga:
				backlog, inFlight := int64(n-k-p), int64(p)
				if gaps.BacklogCountsInFlight {
					backlog = n - k
				}
				check("group A backlog", g.Backlog, false, backlog)
				check("group A in flight", g.InFlight, gaps.InFlight, inFlight)
				age("group A oldest age", g.OldestAge, gaps.OldestAge)
				check("group A consumers", g.Consumers, gaps.Consumers, 1)
				check("group A redeliveries", g.Redeliveries, gaps.Redeliveries, 0)
			case gb:
				check("group B backlog", g.Backlog, false, n)
				check("group B in flight", g.InFlight, gaps.InFlight, 0)
				age("group B oldest age", g.OldestAge, gaps.OldestAge)
				check("group B consumers", g.Consumers, gaps.Consumers, 0)
				check("group B redeliveries", g.Redeliveries, gaps.Redeliveries, 0)
			case gc:
				check("group C backlog", g.Backlog, false, 0)
				check("group C in flight", g.InFlight, gaps.InFlight, 0)
				if g.OldestAge != messaging.KnownAge(0) {
					errs = append(errs, fmt.Errorf("integration: group C oldest age = %v, want 0 (nothing undelivered)", g.OldestAge))
				}
				check("group C consumers", g.Consumers, gaps.Consumers, 1)
				check("group C redeliveries", g.Redeliveries, gaps.Redeliveries, 0)
			}
		}
		return errors.Join(errs...)
	}
	s.eventually(t, ins, s.topic, want)

	// A topic without groups.
	bare := UniqueName(t, "bare")
	if d, ok := s.c.(messaging.TopicDeleter); ok {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, bare)
		})
	}
	if err := messaging.Provision(ctx, s.c, bare); err != nil {
		t.Fatalf("Provision(%s): %v", bare, err)
	}
	kept := int64(0)
	if !gaps.Messages {
		// Brokers that keep messages without groups.
		kept = 3
		if err := s.c.Publish(ctx, bare, numbered("bare", int(kept))...); err != nil {
			t.Fatalf("Publish to %s: %v", bare, err)
		}
	}
	s.eventually(t, ins, bare, func(st messaging.TopicStats, _, _ time.Time) error {
		var errs []error
		if len(st.Groups) != 0 {
			errs = append(errs, fmt.Errorf("integration: groups %+v, want none", st.Groups))
		}
		if v, known := st.Messages.Value(); known == gaps.Messages || known && v != kept {
			errs = append(errs, fmt.Errorf("integration: messages = %v, want %s", st.Messages, map[bool]string{true: "unknown", false: fmt.Sprint(kept)}[gaps.Messages]))
		}
		return errors.Join(errs...)
	})
}

// eventually is InspectUntil with the harness's timeout.
func (s *suite) eventually(t *testing.T, ins messaging.Inspector, topic string, check func(st messaging.TopicStats, start, end time.Time) error) {
	t.Helper()
	InspectUntil(t, ins, topic, s.h.Timeout, check)
}

// InspectUntil calls Inspect on topic until check accepts its answer (given
// the times just before and after the call), failing the test with the last
// answer after timeout. Brokers update some figures asynchronously
// (commits, statistics), so a first answer may lag.
func InspectUntil(t testing.TB, ins messaging.Inspector, topic string, timeout time.Duration, check func(st messaging.TopicStats, start, end time.Time) error) {
	t.Helper()
	Eventually(t, timeout, func() error {
		start := time.Now()
		st, err := ins.Inspect(t.Context(), topic)
		if err != nil {
			return fmt.Errorf("integration: Inspect(%s): %w", topic, err)
		}
		if err := check(st, start, time.Now()); err != nil {
			js, _ := json.Marshal(st)
			return fmt.Errorf("integration: Inspect(%s): %w\nanswer: %s", topic, err, js)
		}
		return nil
	})
}

// Eventually calls cond every 50ms until it returns nil, and fails t with
// its last error after timeout: for state a broker updates asynchronously
// (commits, statistics), read until it shows what is expected.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("%v (last: %v)", t.Context().Err(), err)
		}
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// BenchInspect measures one Inspect call of c on a topic holding 100
// messages with two groups, one of which has consumed them all.
func BenchInspect(b *testing.B, c messaging.Client) {
	ins, ok := c.(messaging.Inspector)
	if !ok {
		b.Skipf("%T does not implement messaging.Inspector", c)
	}
	ctx := b.Context()
	topic, idle, busy := UniqueName(b, "bench"), UniqueName(b, "idle"), UniqueName(b, "busy")
	if d, ok := c.(messaging.TopicDeleter); ok {
		b.Cleanup(func() { _ = d.DeleteTopic(context.Background(), topic) })
	}
	if err := messaging.Provision(ctx, c, topic, idle, busy); err != nil {
		b.Fatal(err)
	}
	const n = 100
	if err := c.Publish(ctx, topic, numbered("bench", n)...); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int32
	all := make(chan struct{})
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
		if got.Add(1) == n {
			close(all)
		}
		return nil
	}, messaging.Group(busy))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Close() })
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("consumed %d of %d", got.Load(), n)
	}
	for b.Loop() {
		if _, err := ins.Inspect(ctx, topic); err != nil {
			b.Fatal(err)
		}
	}
}
