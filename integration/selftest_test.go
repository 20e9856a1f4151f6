package integration_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration"
)

// brokenEnv selects the broken adapter TestBrokenAdapter runs the suite on;
// timeoutEnv, when set, is the harness's Timeout there (default 3s).
const (
	brokenEnv  = "CONFORMANCE_SELFTEST_BROKEN"
	timeoutEnv = "CONFORMANCE_SELFTEST_TIMEOUT"
)

// broken wraps the memory adapter with one deliberate defect.
type broken struct {
	*memory.Client
	defect  string
	counter atomic.Int64
	// published holds, for "shares-messages", the messages given to
	// Publish by ID.
	published sync.Map

	// For "recreate-keeps-position": per topic and group, the messages
	// handled, and those a subscription after a DeleteTopic skips.
	mu      sync.Mutex
	handled map[[2]string]int
	skip    map[[2]string]int
}

// subscribedGroups holds, for "resubscribe-replays", the topics and
// groups subscribed by any client.
var subscribedGroups sync.Map

// keepPosition gives a group's subscription of the defect
// "recreate-keeps-position" the handler that counts what the group
// handled and, after the topic was deleted, acknowledges as many of the
// new topic's messages unhandled: the old topic's position, kept.
func (b *broken) keepPosition(topic string, h messaging.Handler, o messaging.SubscribeOptions) messaging.Handler {
	if o.Group == "" {
		return h
	}
	k := [2]string{topic, o.Group}
	return func(ctx context.Context, m *messaging.Message) error {
		b.mu.Lock()
		if b.skip[k] > 0 {
			b.skip[k]--
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		if err := h(ctx, m); err != nil {
			return err
		}
		b.mu.Lock()
		if b.handled == nil {
			b.handled = map[[2]string]int{}
		}
		b.handled[k]++
		b.mu.Unlock()
		return nil
	}
}

func (b *broken) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if b.defect == "drops-messages" {
		var kept []*messaging.Message
		for _, m := range msgs {
			if b.counter.Add(1)%997 != 0 { // lose about one in a thousand, report success
				kept = append(kept, m)
			} else if m.ID == "" {
				m.ID = "dropped-" + time.Now().Format(time.RFC3339Nano)
			}
		}
		return b.Client.Publish(ctx, topic, kept...)
	}
	err := b.Client.Publish(ctx, topic, msgs...)
	if b.defect == "shares-messages" {
		for _, m := range msgs {
			b.published.Store(m.ID, m)
		}
	}
	return err
}

// PublishAsync, with the defect "drops-uncalled", loses about one in a
// hundred messages given without a callback (nobody hears of it).
func (b *broken) PublishAsync(ctx context.Context, topic string, m *messaging.Message, done messaging.PublishCallback) {
	if b.defect == "drops-uncalled" && done == nil && b.counter.Add(1)%97 == 0 {
		m.Time = time.Now() // as if sent
		return
	}
	b.Client.PublishAsync(ctx, topic, m, done)
}

// Flush, with the defect "flushes-early", returns at once, not waiting
// for the callbacks still running.
func (b *broken) Flush(ctx context.Context) error {
	if b.defect == "flushes-early" {
		return nil
	}
	return b.Client.Flush(ctx)
}

func (b *broken) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	// The defects that depend on the options leave invalid ones to the
	// memory client, which rejects them.
	o, err := messaging.NewSubscribeOptions(1, opts...)
	valid := err == nil
	switch b.defect {
	case "ignores-ackdeadline":
		// The AckDeadline option is dropped: the default applies.
		opts = append(opts, messaging.AckDeadline(messaging.DefaultAckDeadline))
	case "delivers-twice":
		// Every message handled twice: a legitimate at-least-once
		// duplicate, which the suite must not call a loss.
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			if err := inner(ctx, m.Clone()); err != nil {
				return err
			}
			return inner(ctx, m)
		}
	case "acks-before-handler":
		// Acknowledge first, then run the handler: failures are lost.
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			func() {
				defer func() { _ = recover() }()
				_ = inner(ctx, m)
			}()
			return nil
		}
	case "shares-messages":
		// Deliveries share the payload and header of the message given
		// to Publish (of this client), as an adapter that keeps the
		// caller's message would.
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			if v, ok := b.published.Load(m.ID); ok {
				pm := v.(*messaging.Message)
				m.Payload, m.Header = pm.Payload, pm.Header
			}
			return inner(ctx, m)
		}
	case "loses-headers":
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			m.Header = nil
			return inner(ctx, m)
		}
	case "recreate-keeps-position":
		if valid {
			h = b.keepPosition(topic, h, o)
		}
	case "gives-up-interrupted":
		// A handler the subscription's stop interrupts at the last
		// attempt counts as its last failure: the message is given up.
		if valid && o.MaxAttempts > 0 {
			inner := h
			h = func(ctx context.Context, m *messaging.Message) error {
				err := inner(ctx, m)
				if err != nil && ctx.Err() != nil && m.Attempt >= o.MaxAttempts {
					return messaging.Permanent(err)
				}
				return err
			}
		}
	case "acks-interrupted":
		// A handler the subscription's stop interrupts counts as done:
		// its message is acknowledged, unhandled.
		inner := h
		h = func(ctx context.Context, m *messaging.Message) error {
			err := inner(ctx, m)
			if err != nil && ctx.Err() != nil {
				return nil
			}
			return err
		}
	case "resubscribe-replays":
		// A group subscribed again starts over: the topic read from
		// Earliest as well, what the group handled before included.
		if valid && o.Group != "" {
			if _, again := subscribedGroups.LoadOrStore([2]string{topic, o.Group}, true); again {
				old, err := b.readAll(ctx, topic)
				if err != nil {
					return nil, err
				}
				for _, m := range old {
					_ = h(ctx, m)
				}
			}
		}
	}
	sub, err := b.Client.Subscribe(ctx, topic, h, opts...)
	if err != nil || b.defect != "shutdown-no-wait" {
		return sub, err
	}
	w := &noWaitSub{Subscription: sub, done: make(chan struct{})}
	go func() { <-sub.Done(); w.once.Do(func() { close(w.done) }) }()
	return w, nil
}

// noWaitSub is a subscription whose Shutdown returns nil at once, without
// waiting for the running handlers.
type noWaitSub struct {
	messaging.Subscription
	once sync.Once
	done chan struct{}
}

func (s *noWaitSub) Shutdown(ctx context.Context) error {
	go func() { _ = s.Subscription.Shutdown(context.WithoutCancel(ctx)) }()
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *noWaitSub) Done() <-chan struct{} { return s.done }

// Read, with the defect "after-last-rereads", reads from Earliest when asked
// to read after the last offset.
func (b *broken) Read(ctx context.Context, topic string, from messaging.Position, h messaging.Handler) (messaging.Subscription, error) {
	if b.defect == "after-last-rereads" && from.Kind == messaging.PositionAfterOffset {
		if st, err := b.Client.Inspect(ctx, topic); err == nil && st.Last == from.Offset {
			from = messaging.Earliest
		}
	}
	return b.Client.Read(ctx, topic, from, h)
}

// DeleteTopic, with the defect "delete-keeps-data", ends the topic's
// subscriptions but leaves its messages: it puts them back. With
// "recreate-keeps-position" the topic's groups skip as many messages
// afterwards as they had handled (see keepPosition).
func (b *broken) DeleteTopic(ctx context.Context, topic string) error {
	if b.defect == "recreate-keeps-position" {
		b.mu.Lock()
		for k, n := range b.handled {
			if k[0] == topic {
				if b.skip == nil {
					b.skip = map[[2]string]int{}
				}
				b.skip[k], b.handled[k] = n, 0
			}
		}
		b.mu.Unlock()
	}
	if b.defect != "delete-keeps-data" {
		return b.Client.DeleteTopic(ctx, topic)
	}
	old, err := b.readAll(ctx, topic)
	if err != nil {
		return err
	}
	if err := b.Client.DeleteTopic(ctx, topic); err != nil {
		return err
	}
	if len(old) > 0 {
		return b.Client.Publish(ctx, topic, old...)
	}
	return nil
}

// readAll returns the messages topic holds, read from Earliest to its
// last offset (as new messages, without their offsets).
func (b *broken) readAll(ctx context.Context, topic string) ([]*messaging.Message, error) {
	st, err := b.Client.Inspect(ctx, topic)
	if err != nil || st.Last == "" {
		return nil, nil
	}
	got := make(chan *messaging.Message, 100)
	r, err := b.Client.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- m.Clone()
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	var old []*messaging.Message
	for m := range got {
		old = append(old, &messaging.Message{ID: m.ID, Key: m.Key, Payload: m.Payload, Header: m.Header})
		if m.Offset == st.Last {
			break
		}
	}
	return old, nil
}

// TestBrokenAdapter is run by TestSuiteCatchesBrokenAdapters in a child
// process; on its own it skips.
func TestBrokenAdapter(t *testing.T) {
	defect := os.Getenv(brokenEnv)
	if defect == "" {
		t.Skip("run by TestSuiteCatchesBrokenAdapters with " + brokenEnv + " set")
	}
	timeout := 3 * time.Second
	if d, err := time.ParseDuration(os.Getenv(timeoutEnv)); err == nil {
		timeout = d
	}
	broker, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	integration.RunConformance(t, integration.Harness{
		Name: "broken-" + defect,
		Open: func(t testing.TB) messaging.Client {
			c, err := broker.NewClient()
			if err != nil {
				t.Fatal(err)
			}
			return &broken{Client: c, defect: defect}
		},
		Kill:    func(t testing.TB, c messaging.Client) { c.(*broken).Kill() },
		Timeout: timeout,
	})
}

// selfTest is how one broken adapter must fare.
type selfTest struct {
	// mustFail are the cases the defect must fail; none: the run must pass.
	mustFail []string
	// only, when set, limits the run to these cases (the defect breaks
	// others in ways beside the point).
	only []string
	// says is output the failure must contain: the assertion meant to
	// catch the defect, not another one.
	says string
	// timeout is the harness's Timeout (default 3s).
	timeout time.Duration
}

// TestSuiteCatchesBrokenAdapters proves the suite can fail: each broken
// adapter must fail the cases its defect breaks, and an adapter with
// at-least-once duplicates must not be called lossy.
func TestSuiteCatchesBrokenAdapters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite for each broken adapter in child processes")
	}
	for defect, st := range map[string]selfTest{
		"acks-before-handler": {mustFail: []string{"NackRedelivers", "PanicRedelivers", "RetryAfterDelays", "MaxAttempts"}},
		"drops-messages":      {mustFail: []string{"Count10000"}},
		"loses-headers":       {mustFail: []string{"RoundTrip"}},
		"shares-messages": {mustFail: []string{"MessagesNotShared"}, only: []string{"MessagesNotShared"},
			says: "group a's delivery (the publisher changed its message after Publish returned)"},
		"shutdown-no-wait": {mustFail: []string{"ShutdownInTime"}, only: []string{"ShutdownInTime"},
			says: "Shutdown returned nil before the running handler returned"},
		"after-last-rereads": {mustFail: []string{"Replay"}, only: []string{"Replay"},
			says: "reading after the last offset"},
		"delete-keeps-data": {mustFail: []string{"TopicDeletedEndsSubscription"}, only: []string{"TopicDeletedEndsSubscription"},
			says: "DeleteTopic left the old messages"},
		"resubscribe-replays": {mustFail: []string{"ResubscribeResumes"}, only: []string{"ResubscribeResumes"},
			says: "delivered again after resubscribing"},
		"recreate-keeps-position": {mustFail: []string{"RecreatedTopicGroupStartsAfresh"}, only: []string{"RecreatedTopicGroupStartsAfresh"},
			says: "waiting for the recreated topic's first message"},
		"acks-interrupted": {mustFail: []string{"RepeatedStopsLoseNothing"}, only: []string{"RepeatedStopsLoseNothing"},
			says: "messages never delivered: [stops-0"},
		"gives-up-interrupted": {mustFail: []string{"StopReleasesLastAttempt"}, only: []string{"StopReleasesLastAttempt"},
			says: "never delivered again: [stoplast-0"},
		// A Timeout above DefaultAckDeadline: the bound fails the case, not
		// the wait for the redelivery.
		"ignores-ackdeadline": {mustFail: []string{"AckDeadline"}, only: []string{"AckDeadline"},
			says: "want within", timeout: messaging.DefaultAckDeadline + 15*time.Second},
		"drops-uncalled": {mustFail: []string{"AsyncPublishWithoutCallback"}, only: []string{"AsyncPublishWithoutCallback"},
			says: "of 999 distinct messages delivered"},
		"flushes-early": {mustFail: []string{"AsyncFlushWaitsForCallback"}, only: []string{"AsyncFlushWaitsForCallback"},
			says: "Flush while a PublishAsync callback runs: <nil>, want it to wait"},
		"delivers-twice": {only: []string{"HostileInput"}},
	} {
		t.Run(defect, func(t *testing.T) {
			t.Parallel()
			run := "^TestBrokenAdapter$"
			if st.only != nil {
				run += "/^(" + strings.Join(st.only, "|") + ")$"
			}
			cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v", "-test.count=1", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), brokenEnv+"="+defect)
			if st.timeout > 0 {
				cmd.Env = append(cmd.Env, timeoutEnv+"="+st.timeout.String())
			}
			out, err := cmd.CombinedOutput()
			switch {
			case len(st.mustFail) == 0 && err != nil:
				t.Errorf("the suite failed an adapter that %s (%v)", defect, err)
			case len(st.mustFail) == 0:
				for _, c := range st.only {
					if !strings.Contains(string(out), "--- PASS: TestBrokenAdapter/"+c+" ") {
						t.Errorf("case %s did not pass for an adapter that %s", c, defect)
					}
				}
			case len(st.mustFail) > 0 && err == nil:
				t.Fatalf("the suite passed an adapter that %s:\n%s", defect, out)
			}
			for _, c := range st.mustFail {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenAdapter/"+c+" ") {
					t.Errorf("case %s did not fail for an adapter that %s", c, defect)
				}
			}
			if st.says != "" && !strings.Contains(string(out), st.says) {
				t.Errorf("the failure for an adapter that %s does not say %q", defect, st.says)
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
		})
	}
}
