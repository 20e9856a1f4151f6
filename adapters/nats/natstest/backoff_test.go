package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestBackoffCrashedMemberRedeliveredEarly: with RedeliveryBackoff, a
// message taken by a consumer that dies without settling it comes back to
// a live member of the group after the first backoff delay, not after the
// (much longer) AckDeadline: the schedule is the consumer's BackOff.
func TestBackoffCrashedMemberRedeliveredEarly(t *testing.T) {
	const first, deadline = 500 * time.Millisecond, 30 * time.Second
	ep := natstest.Broker.Endpoint(t)
	c := natstest.OpenURL(t, ep)
	topic, group := integration.UniqueName(t, "bo"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	opts := []messaging.SubscribeOption{messaging.Group(group), messaging.AckDeadline(deadline), messaging.RedeliveryBackoff(first, 2*first)}

	// A first member sets up the group's consumer, then leaves.
	setup, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := setup.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "crash-1"}); err != nil {
		t.Fatal(err)
	}

	// A raw consumer takes the message and dies without acknowledging it.
	nc, err := natsgo.Connect(ep)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(t.Context(), c.StreamName(topic), c.ConsumerName(topic, group))
	if err != nil {
		t.Fatal(err)
	}
	if info := cons.CachedInfo(); len(info.Config.BackOff) != 2 || info.Config.BackOff[0] != first {
		t.Fatalf("consumer BackOff %v (AckWait %v), want [%v %v]", info.Config.BackOff, info.Config.AckWait, first, 2*first)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var taken jetstream.Msg
	for m := range batch.Messages() {
		taken = m
	}
	if taken == nil {
		t.Fatalf("the raw consumer fetched nothing: %v", batch.Error())
	}
	tookAt := time.Now()
	nc.Close()

	got := make(chan *messaging.Message, 4)
	live, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	select {
	case m := <-got:
		waited := time.Since(tookAt)
		t.Logf("redelivered %v after the crash (backoff %v, ack deadline %v), attempt %d", waited, first, deadline, m.Attempt)
		if waited < first*9/10 {
			t.Errorf("redelivered after %v, before the first backoff delay %v", waited, first)
		}
		if m.ID != "crash-1" || m.Attempt < 2 {
			t.Errorf("got %s attempt %d, want crash-1 attempt >= 2", m.ID, m.Attempt)
		}
	case <-time.After(deadline / 3):
		t.Fatalf("not redelivered within %v: the backoff did not shorten the ack wait %v", deadline/3, deadline)
	}
}

// TestBackoffHeldMessagesKept: with a backoff far shorter than a handler's
// run, the messages a member holds, running or queued for its one worker,
// are kept alive by in-progress signals and never go to the other member;
// likewise every message of a running batch. The handlers' duration is what
// is tested, so they sleep.
func TestBackoffHeldMessagesKept(t *testing.T) {
	const first, run, n = 300 * time.Millisecond, time.Second, 3
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			holder := natstest.Open(t)
			other := natstest.Open(t)
			topic, group := integration.UniqueName(t, "held"), integration.UniqueName(t, "g")
			t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
			opts := []messaging.SubscribeOption{messaging.Group(group), messaging.RedeliveryBackoff(first)}
			if err := other.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			msgs := make([]*messaging.Message, n)
			for i := range msgs {
				msgs[i] = &messaging.Message{ID: fmt.Sprintf("held-%d", i)}
			}
			if err := other.Publish(t.Context(), topic, msgs...); err != nil {
				t.Fatal(err)
			}
			col := integration.NewCollector()
			started := make(chan struct{}, n)
			var err error
			if batch {
				_, err = holder.SubscribeBatch(t.Context(), topic, func(_ context.Context, ms []*messaging.Message) []error {
					started <- struct{}{}
					time.Sleep(time.Duration(n) * run)
					for _, m := range ms {
						col.Add(m)
					}
					return nil
				}, append(opts, messaging.BatchSize(n), messaging.BatchWait(time.Second))...)
			} else {
				_, err = holder.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
					started <- struct{}{}
					time.Sleep(run)
					col.Add(m)
					return nil
				}, opts...)
			}
			if err != nil {
				t.Fatal(err)
			}
			<-started
			stolen := integration.NewCollector()
			if _, err := other.Subscribe(t.Context(), topic, stolen.Handler(), opts...); err != nil {
				t.Fatal(err)
			}
			col.WaitDistinct(t, n, 30*time.Second)
			if batch && col.Total() != n {
				t.Errorf("batch handler saw %d messages, want %d in one batch", col.Total(), n)
			}
			for _, m := range col.Messages() {
				if m.Attempt != 1 {
					t.Errorf("%s: attempt %d, want 1 (redelivered while held)", m.ID, m.Attempt)
				}
			}
			if stolen.Wait(2*first, func(c *integration.Collector) bool { return c.Total() > 0 }) {
				t.Errorf("held messages went to the other member: %v", stolen)
			}
		})
	}
}

// TestBackoffSubscribeOptions: the schedule is cut to MaxAttempts-1 entries
// and a consumer with one gets a finite MaxDeliver above it, which servers
// before 2.10 need with a BackOff; MaxAttempts is never the MaxDeliver (the
// server would drop a message released at its last delivery; the engine
// enforces it), also on a consumer made with one by an earlier version; a
// later subscriber without a schedule removes it.
func TestBackoffSubscribeOptions(t *testing.T) {
	c := natstest.Open(t)
	topic, group := integration.UniqueName(t, "boopt"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	info := func(opts ...messaging.SubscribeOption) *jetstream.ConsumerInfo {
		t.Helper()
		sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil }, append(opts, messaging.Group(group))...)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		cons, err := c.JetStream().Consumer(t.Context(), c.StreamName(topic), c.ConsumerName(topic, group))
		if err != nil {
			t.Fatal(err)
		}
		return cons.CachedInfo()
	}
	s := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if got := info(messaging.RedeliveryBackoff(s...), messaging.MaxAttempts(3)).Config; len(got.BackOff) != 2 || got.MaxDeliver < 1<<30 || got.AckWait != time.Second {
		t.Errorf("MaxAttempts 3: BackOff %v, MaxDeliver %d, AckWait %v; want [1s 2s], unlimited (2^31-1), 1s", got.BackOff, got.MaxDeliver, got.AckWait)
	}
	// As an earlier version made it: MaxDeliver = MaxAttempts.
	have := info().Config
	have.MaxDeliver = 3
	if _, err := c.JetStream().UpdateConsumer(t.Context(), c.StreamName(topic), have); err != nil {
		t.Fatal(err)
	}
	if got := info(messaging.MaxAttempts(3)).Config; got.MaxDeliver != -1 {
		t.Errorf("MaxAttempts 3 without a schedule, on a consumer with MaxDeliver 3: MaxDeliver %d, want -1", got.MaxDeliver)
	}
	if got := info(messaging.RedeliveryBackoff(s...)).Config; len(got.BackOff) != 3 || got.MaxDeliver < 4 {
		t.Errorf("no MaxAttempts: BackOff %v, MaxDeliver %d; want 3 entries and a MaxDeliver above 3", got.BackOff, got.MaxDeliver)
	}
	if got := info(messaging.AckDeadline(5 * time.Second)).Config; len(got.BackOff) != 0 || got.MaxDeliver != -1 || got.AckWait != 5*time.Second {
		t.Errorf("no schedule: BackOff %v, MaxDeliver %d, AckWait %v; want none, -1, 5s", got.BackOff, got.MaxDeliver, got.AckWait)
	}
}

// TestBackoffNakKeepsSchedule: a failed attempt without RetryAfter comes
// back after its schedule entry, not later: the server measures a nak's
// delay against the attempt's ack wait, so the adapter naks with the entry
// less the difference to the first one. (The conformance case bounds the
// gaps from below only; a nak with the entry itself came a whole entry
// late.)
func TestBackoffNakKeepsSchedule(t *testing.T) {
	c := natstest.Open(t)
	topic, group := integration.UniqueName(t, "bonak"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	schedule := []time.Duration{100 * time.Millisecond, 3 * time.Second}
	times := make(chan time.Time, 10)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		times <- time.Now()
		if m.Attempt < 3 {
			return errors.New("not yet")
		}
		return nil
	}, messaging.Group(group), messaging.RedeliveryBackoff(schedule...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "backed-off"}); err != nil {
		t.Fatal(err)
	}
	var got []time.Time
	for len(got) < 3 {
		select {
		case at := <-times:
			got = append(got, at)
		case <-time.After(15 * time.Second):
			t.Fatalf("%d attempts within 15s, want 3", len(got))
		}
	}
	// Generous: 1.5s either way of the 3s entry; a nak with the entry
	// itself came 5.9s after.
	if gap := got[2].Sub(got[1]); gap < schedule[1]-schedule[1]/10 || gap > schedule[1]+1500*time.Millisecond {
		t.Fatalf("attempt 3 came %v after attempt 2, want about the schedule's %v", gap, schedule[1])
	}
}

// TestSubscribeBatchCoreUnsupported: core NATS cannot fetch batches.
func TestSubscribeBatchCoreUnsupported(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	_, err := c.SubscribeBatch(t.Context(), "core-batch", func(context.Context, []*messaging.Message) []error { return nil })
	if !errors.Is(err, messaging.ErrUnsupported) {
		t.Fatalf("SubscribeBatch in core mode: %v, want ErrUnsupported", err)
	}
}
