package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// RunConformance runs the shared conformance suite against the adapter h
// describes. Every case uses its own topic and groups, which it deletes at
// the end when the client implements messaging.TopicDeleter. Cases for
// capabilities the adapter does not claim are skipped with the reason.
//
// The cases run in parallel (t.Parallel), as many at a time as the test
// binary's -parallel flag allows (GOMAXPROCS by default), so h.Open must be
// safe for concurrent use. Most of a case's time is spent waiting (for a
// redelivery, a deadline, or the proof that none comes), not computing.
func RunConformance(t *testing.T, h Harness) {
	h = h.withDefaults()
	probe := h.client(t)
	caps := probe.Capabilities()
	_, batches := probe.(messaging.BatchConsumer)
	t.Logf("%s capabilities: %+v", h.Name, caps)

	_, deleter := probe.(messaging.TopicDeleter)
	_, inspects := probe.(messaging.Inspector)
	cases := []conformanceCase{
		{"RoundTrip", "", true, (*suite).roundTrip},
		{"MessagesNotShared", "Groups", caps.Groups, (*suite).messagesNotShared},
		{"InvalidNames", "", true, (*suite).invalidNames},
		{"HostileInput", "", true, (*suite).hostileInput},
		{"DuplicateID", "", true, (*suite).duplicateID},
		{"MaxMessageSize", "MaxMessageSize > 0", caps.MaxMessageSize > 0, (*suite).maxMessageSize},
		{"EphemeralFanOut", "", true, (*suite).ephemeralFanOut},
		{"CompetingConsumers", "Groups", caps.Groups, (*suite).competingConsumers},
		{"FanOutAcrossGroups", "Groups", caps.Groups, (*suite).fanOutGroups},
		{"NackRedelivers", "Groups", caps.Groups, (*suite).nackRedelivers},
		{"RedeliveryKeepsID", "Groups", caps.Groups, (*suite).redeliveryKeepsID},
		{"RetryAfterDelays", "Groups", caps.Groups, (*suite).retryAfterDelays},
		{"PanicRedelivers", "Groups", caps.Groups, (*suite).panicRedelivers},
		{"CancelMidHandlerRedelivers", "Groups", caps.Groups, (*suite).cancelRedelivers},
		{"PermanentNotRedelivered", "Groups", caps.Groups, (*suite).permanentNotRedelivered},
		{"MaxAttempts", "Groups", caps.Groups, (*suite).maxAttempts},
		{"AckDeadline", "AckDeadline", caps.Groups && caps.AckDeadline, (*suite).ackDeadline},
		{"PerKeyOrder", "PerKeyOrder", caps.PerKeyOrder, (*suite).perKeyOrder},
		{"Replay", "Replay", caps.Replay, (*suite).replay},
		{"ReadHandlerErrorEnds", "Replay", caps.Replay, (*suite).readHandlerErrorEnds},
		{"ReplayByTime", "ReplayByTime", caps.Replay && caps.ReplayByTime, (*suite).replayByTime},
		{"ReplayDoesNotDisturbGroups", "Replay and Groups", caps.Replay && caps.Groups, (*suite).replayKeepsGroups},
		{"GroupStartAt", "GroupStartAt", caps.Groups && caps.GroupStartAt, (*suite).groupStartAt},
		{"RedeliveryBackoff", "BrokerBackoff", caps.Groups && caps.BrokerBackoff, (*suite).redeliveryBackoff},
		{"BatchDelivery", "BatchConsumer", caps.Groups && batches, (*suite).batchDelivery},
		{"BatchPartialFailure", "BatchConsumer", caps.Groups && batches, (*suite).batchPartialFailure},
		{"BatchStopReleasesLastAttempt", "BatchConsumer, Groups, and Persistent or Replay", caps.Groups && batches && (caps.Persistent || caps.Replay), (*suite).batchStopReleasesLastAttempt},
		{"Count10000", "", true, (*suite).count10000},
		{"CloseSemantics", "", true, (*suite).closeSemantics},
		{"CancelledContext", "", true, (*suite).cancelledContext},
		{"EdgeArguments", "", true, (*suite).edgeArguments},
		{"SubscribeCancelPrompt", "", true, (*suite).cancelPrompt},
		{"Inspect", "messaging.Inspector", inspects, (*suite).inspect},
	}
	_, shutdowner := probe.(messaging.Shutdowner)
	cases = append(cases, engineCases(caps, deleter, shutdowner)...)
	_, async := probe.(messaging.AsyncPublisher)
	cases = append(cases, asyncCases(async)...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Skipf("%s does not claim %s", h.Name, c.needs)
			}
			t.Parallel()
			c.run(newSuite(t, h, caps), t)
		})
	}
}

// conformanceCase is one case of the suite.
type conformanceCase struct {
	name  string
	needs string // capability the case needs, for the skip message
	ok    bool
	run   func(s *suite, t *testing.T)
}

// suite is the state of one conformance case.
type suite struct {
	t     *testing.T
	h     Harness
	caps  messaging.Capabilities
	c     messaging.Client // the case's first client, which also deletes the topic
	topic string
}

func newSuite(t *testing.T, h Harness, caps messaging.Capabilities) *suite {
	s := &suite{t: t, h: h, caps: caps, c: h.client(t), topic: UniqueName(t, "conf")}
	if d, ok := s.c.(messaging.TopicDeleter); ok {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := d.DeleteTopic(ctx, s.topic); err != nil {
				t.Logf("cleanup: delete topic %s: %v", s.topic, err)
			}
		})
	}
	return s
}

func (s *suite) group(name string) string { return UniqueName(s.t, name) }

// groupOpts returns the option of a new, provisioned group named after name
// where the adapter claims Groups, and none otherwise (an ephemeral
// subscription, for cases that need no redelivery).
func (s *suite) groupOpts(name string) []messaging.SubscribeOption {
	s.t.Helper()
	if !s.caps.Groups {
		return nil
	}
	g := s.group(name)
	s.provision(g)
	return []messaging.SubscribeOption{messaging.Group(g)}
}

// subscribe subscribes and closes the subscription when the test ends.
func (s *suite) subscribe(ctx context.Context, c messaging.Client, h messaging.Handler, opts ...messaging.SubscribeOption) messaging.Subscription {
	s.t.Helper()
	sub, err := c.Subscribe(ctx, s.topic, h, opts...)
	if err != nil {
		s.t.Fatalf("Subscribe: %v", err)
	}
	s.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func (s *suite) publish(c messaging.Client, msgs ...*messaging.Message) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	if err := c.Publish(ctx, s.topic, msgs...); err != nil {
		s.t.Fatalf("Publish: %v", err)
	}
}

// provision prepares the topic for groups on adapters that route only to
// existing queues.
func (s *suite) provision(groups ...string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	if err := messaging.Provision(ctx, s.c, s.topic, groups...); err != nil {
		s.t.Fatalf("Provision: %v", err)
	}
}

func numbered(prefix string, n int) []*messaging.Message {
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: fmt.Sprintf("%s-%d", prefix, i), Payload: []byte(strconv.Itoa(i))}
	}
	return msgs
}

func ids(msgs []*messaging.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// receive returns a channel fed by a handler; deliveries beyond its buffer
// block the handler.
func receive(buf int) (chan *messaging.Message, messaging.Handler) {
	ch := make(chan *messaging.Message, buf)
	return ch, func(ctx context.Context, m *messaging.Message) error {
		select {
		case ch <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *suite) next(ch <-chan *messaging.Message, what string) *messaging.Message {
	s.t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(s.h.Timeout):
		s.t.Fatalf("no message after %v: waiting for %s", s.h.Timeout, what)
		return nil
	}
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) } // nil equals empty

func sameHeader(a, b messaging.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// roundTrip: ID, key, headers, binary and empty payloads arrive verbatim;
// every delivery has an ID and a Time about the publish time; with
// PublishAssignsID Publish fills in missing IDs and times and the consumer
// gets those.
func (s *suite) roundTrip(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	sent := []*messaging.Message{
		{ID: "rt-binary", Key: "key-1", Payload: binary, Header: messaging.Header{"a": "1", "Content-Type": "application/octet-stream", "x-Empty": ""}},
		{ID: "rt-empty", Payload: nil},
		{Payload: []byte("no id given"), Key: "key-2", Header: messaging.Header{"unicode": "héllo ✓"}},
	}
	g := s.group("rt")
	s.provision(g)
	ch, h := receive(10)
	s.subscribe(t.Context(), s.c, h, messaging.Group(g))
	before := time.Now()
	s.publish(s.c, sent...)
	// The key a message is matched by: its ID, but without
	// PublishAssignsID the message published without one gets an ID on
	// delivery only, and is matched by its payload.
	key := func(m *messaging.Message) string { return m.ID }
	if s.caps.PublishAssignsID {
		if sent[2].ID == "" {
			t.Fatal("Publish did not assign an ID to a message without one (PublishAssignsID)")
		}
		for _, m := range sent {
			if m.Time.IsZero() {
				t.Fatalf("Publish did not set Time on %s (PublishAssignsID)", m.ID)
			}
		}
	} else {
		noID := string(sent[2].Payload)
		key = func(m *messaging.Message) string {
			if string(m.Payload) == noID {
				return noID
			}
			return m.ID
		}
	}
	got := map[string]*messaging.Message{}
	for range sent {
		m := s.next(ch, "round-trip messages")
		if m.ID == "" {
			t.Fatalf("message %q delivered without an ID", m.Payload)
		}
		got[key(m)] = m
	}
	for _, want := range sent {
		m := got[key(want)]
		if m == nil {
			t.Fatalf("message %s not delivered (got IDs %v)", want.ID, slicesKeys(got))
		}
		if m.Key != want.Key {
			t.Errorf("%s: Key %q, want %q", want.ID, m.Key, want.Key)
		}
		if !sameBytes(m.Payload, want.Payload) {
			t.Errorf("%s: payload %q, want %q", want.ID, m.Payload, want.Payload)
		}
		if !sameHeader(m.Header, want.Header) {
			t.Errorf("%s: header %v, want exactly %v", want.ID, m.Header, want.Header)
		}
		if m.Topic != s.topic {
			t.Errorf("%s: Topic %q, want %q", want.ID, m.Topic, s.topic)
		}
		if m.Group != g {
			t.Errorf("%s: Group %q, want %q", want.ID, m.Group, g)
		}
		if m.Attempt != 1 {
			t.Errorf("%s: Attempt %d on first delivery, want 1", want.ID, m.Attempt)
		}
		if m.Time.Before(before.Add(-2*time.Second)) || m.Time.After(time.Now().Add(2*time.Second)) {
			t.Errorf("%s: Time %v, want about the publish time %v", want.ID, m.Time, before)
		}
		// Offsets are checked on Stream reads (the Replay case): group
		// deliveries may come from a queue without a log (RabbitMQ).
	}
}

// messagesNotShared: Publish keeps no reference to the caller's message
// (changing its payload and header after Publish returned changes nothing
// delivered), and deliveries share nothing (a handler changing its
// message's payload and header in place changes nothing another group's
// handler sees, nor what a Stream read sees, where the adapter claims
// Replay). The groups subscribe after the change, so their fetches come
// after it.
func (s *suite) messagesNotShared(t *testing.T) {
	ga, gb := s.group("copya"), s.group("copyb")
	s.provision(ga, gb)
	sent := &messaging.Message{ID: "copied", Payload: []byte("original"), Header: messaging.Header{"h": "original"}}
	wantPayload, wantHeader := bytes.Clone(sent.Payload), maps.Clone(sent.Header)
	s.publish(s.c, sent)
	copy(sent.Payload, "CHANGED!")
	sent.Header["h"] = "changed"
	sent.Header["added"] = "by the publisher"

	check := func(who string, m *messaging.Message) {
		if !sameBytes(m.Payload, wantPayload) || !sameHeader(m.Header, wantHeader) {
			t.Errorf("%s: payload %q, header %v, want %q, %v", who, m.Payload, m.Header, wantPayload, wantHeader)
		}
	}
	// a checks its delivery, then changes it in place; b checks its own
	// once a has changed its.
	changed := make(chan struct{})
	var once sync.Once
	aDone, bDone := make(chan struct{}, 1), make(chan struct{}, 1)
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		once.Do(func() {
			check("group a's delivery (the publisher changed its message after Publish returned)", m)
			copy(m.Payload, "HANDLER!")
			if m.Header != nil {
				m.Header["h"] = "changed by a handler"
				m.Header["added"] = "by a handler"
			}
			close(changed)
			aDone <- struct{}{}
		})
		return nil
	}, messaging.Group(ga))
	var bOnce sync.Once
	s.subscribe(t.Context(), h2(s, t), func(ctx context.Context, m *messaging.Message) error {
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		bOnce.Do(func() {
			check("group b's delivery (group a's handler changed its own in place)", m)
			bDone <- struct{}{}
		})
		return nil
	}, messaging.Group(gb))
	for _, done := range []chan struct{}{aDone, bDone} {
		select {
		case <-done:
		case <-time.After(s.h.Timeout):
			t.Fatalf("message not delivered to both groups within %v", s.h.Timeout)
		}
	}
	if !s.caps.Replay {
		return
	}
	// A Stream read's delivery is its own too: a read changes its message
	// in place, and a second read from the start sees the original.
	read := s.next(s.read(messaging.Earliest), "the message read from Earliest")
	check("a read's delivery", read)
	copy(read.Payload, "READER!!")
	if read.Header != nil {
		read.Header["h"] = "changed by a reader"
	}
	check("a second read's delivery (the first read changed its own in place)", s.next(s.read(messaging.Earliest), "the message read again from Earliest"))
}

func slicesKeys(m map[string]*messaging.Message) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// invalidNames: bad topic and group names fail with ErrInvalidTopic, in
// every call that takes them.
func (s *suite) invalidNames(t *testing.T) {
	ctx := t.Context()
	for _, bad := range []string{"", "has space", "semi;colon", ".leading", "a..b", string(make([]byte, messaging.MaxNameLength+1))} {
		for _, call := range clientCalls(s.c, bad) {
			if call.topicless {
				continue
			}
			if err := call.do(ctx); !errors.Is(err, messaging.ErrInvalidTopic) {
				t.Errorf("%s on %q: %v, want ErrInvalidTopic", call.name, bad, err)
			}
		}
	}
	if _, err := s.c.Subscribe(ctx, s.topic, func(context.Context, *messaging.Message) error { return nil }, messaging.Group("bad group")); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("Subscribe with group %q: %v, want ErrInvalidTopic", "bad group", err)
	}
	if _, err := s.c.Subscribe(ctx, s.topic, func(context.Context, *messaging.Message) error { return nil }, messaging.Concurrency(0)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Subscribe with concurrency 0: %v, want ErrInvalidOption", err)
	}
}

// maxMessageSize: a message over the limit fails before sending with
// ErrMessageTooLarge; one at the limit goes through intact.
func (s *suite) maxMessageSize(t *testing.T) {
	limit := s.caps.MaxMessageSize
	over := &messaging.Message{ID: "too-big", Payload: make([]byte, limit+1-len("too-big"))}
	if err := s.c.Publish(t.Context(), s.topic, over); !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Fatalf("Publish of %d bytes with limit %d: %v, want ErrMessageTooLarge", over.Size(), limit, err)
	}
	if limit > 8<<20 {
		t.Logf("limit %d bytes: not sending a message at the limit (too large for a test)", limit)
		return
	}
	at := &messaging.Message{ID: "at-limit", Payload: bytes.Repeat([]byte{7}, limit-len("at-limit"))}
	g := s.group("size")
	s.provision(g)
	ch, h := receive(1)
	s.subscribe(t.Context(), s.c, h, messaging.Group(g))
	s.publish(s.c, at)
	m := s.next(ch, "the message at the size limit")
	if m.ID != at.ID || !bytes.Equal(m.Payload, at.Payload) {
		t.Fatalf("message at the limit came back as %s with %d bytes, want %s with %d", m.ID, len(m.Payload), at.ID, len(at.Payload))
	}
}

// ephemeralFanOut: two group-less subscriptions each get every message
// published after they subscribed, with an empty Group.
func (s *suite) ephemeralFanOut(t *testing.T) {
	a, b := NewCollector(), NewCollector()
	s.subscribe(t.Context(), s.c, a.Handler())
	s.subscribe(t.Context(), h2(s, t), b.Handler())
	msgs := numbered("eph", 20)
	s.publish(s.c, msgs...)
	a.WaitDistinct(t, len(msgs), s.h.Timeout)
	b.WaitDistinct(t, len(msgs), s.h.Timeout)
	a.Report(t, ids(msgs))
	b.Report(t, ids(msgs))
	for _, col := range []*Collector{a, b} {
		for _, m := range col.Messages() {
			if m.Group != "" {
				t.Fatalf("%s delivered to a group-less subscription with Group %q, want empty", m.ID, m.Group)
			}
		}
	}
}

// h2 opens a second client for the case.
func h2(s *suite, t *testing.T) messaging.Client { return s.h.client(t) }

// competingConsumers: members of one group share the messages, each handled
// once.
func (s *suite) competingConsumers(t *testing.T) {
	g := s.group("work")
	s.provision(g)
	col := NewCollector()
	var perMember [2]atomic.Int64
	for i, c := range []messaging.Client{s.c, h2(s, t)} {
		s.subscribe(t.Context(), c, func(_ context.Context, m *messaging.Message) error {
			perMember[i].Add(1)
			col.Add(m)
			return nil
		}, messaging.Group(g), messaging.Concurrency(2))
	}
	var published []string
	for batch := range 10 {
		msgs := numbered(fmt.Sprintf("cc%d", batch), 20)
		s.publish(s.c, msgs...)
		published = append(published, ids(msgs)...)
	}
	col.WaitDistinct(t, len(published), s.h.Timeout)
	if dups := col.Report(t, published); dups != 0 {
		t.Errorf("%d messages were handled more than once by a group with no failures", dups)
	}
	t.Logf("split between members: %d / %d", perMember[0].Load(), perMember[1].Load())
}

// fanOutGroups: each distinct group receives every message.
func (s *suite) fanOutGroups(t *testing.T) {
	groups := []string{s.group("g1"), s.group("g2"), s.group("g3")}
	s.provision(groups...)
	cols := make([]*Collector, len(groups))
	for i, g := range groups {
		cols[i] = NewCollector()
		s.subscribe(t.Context(), s.c, cols[i].Handler(), messaging.Group(g))
	}
	msgs := numbered("fan", 50)
	s.publish(s.c, msgs...)
	for i, col := range cols {
		col.WaitDistinct(t, len(msgs), s.h.Timeout)
		if dups := col.Report(t, ids(msgs)); dups != 0 {
			t.Errorf("group %s: %d duplicates with no failures", groups[i], dups)
		}
	}
}

// failOnce returns a handler that fails the first delivery of each message
// with fail(), then forwards deliveries to the returned channel.
func failOnce(fail func(ctx context.Context, m *messaging.Message) error) (chan *messaging.Message, messaging.Handler) {
	ch := make(chan *messaging.Message, 100)
	var mu sync.Mutex
	failed := map[string]bool{}
	return ch, func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		first := !failed[m.ID]
		failed[m.ID] = true
		mu.Unlock()
		ch <- m.Clone()
		if first {
			return fail(ctx, m)
		}
		return nil
	}
}

// redeliveryCase publishes one message to a fresh group whose handler fails
// it once with fail, and checks the redelivery.
func (s *suite) redeliveryCase(t *testing.T, fail func(ctx context.Context, m *messaging.Message) error) (first, second *messaging.Message) {
	g := s.group("redeliver")
	s.provision(g)
	ch, h := failOnce(fail)
	s.subscribe(t.Context(), s.c, h, messaging.Group(g))
	want := &messaging.Message{ID: "redeliver-me", Key: "k", Payload: []byte("again"), Header: messaging.Header{"h": "v"}}
	s.publish(s.c, want)
	first = s.next(ch, "the first delivery")
	second = s.next(ch, "the redelivery")
	if first.Attempt != 1 || second.Attempt != 2 {
		t.Errorf("attempts %d then %d, want 1 then 2", first.Attempt, second.Attempt)
	}
	if second.ID != want.ID || !bytes.Equal(second.Payload, want.Payload) || !sameHeader(second.Header, want.Header) || second.Key != want.Key {
		t.Errorf("redelivered message %+v differs from the published one", second)
	}
	return first, second
}

// nackRedelivers: an error means redelivery with Attempt+1.
func (s *suite) nackRedelivers(t *testing.T) {
	s.redeliveryCase(t, func(context.Context, *messaging.Message) error { return errors.New("integration: transient") })
}

// redeliveryKeepsID: a message published without an ID comes again under
// the ID and Time of its first delivery, so an idempotent consumer can key
// on them: the ID Publish assigned where the adapter claims
// PublishAssignsID, else one the adapter derives from the broker's own
// position of the message (Publish leaving the message as it was).
func (s *suite) redeliveryKeepsID(t *testing.T) {
	g := s.group("keepid")
	s.provision(g)
	ch, h := failOnce(func(context.Context, *messaging.Message) error { return errors.New("integration: transient") })
	s.subscribe(t.Context(), s.c, h, messaging.Group(g))
	sent := &messaging.Message{Payload: []byte("published without an ID")}
	s.publish(s.c, sent)
	if s.caps.PublishAssignsID == (sent.ID == "") {
		t.Fatalf("Publish left ID %q (PublishAssignsID %v)", sent.ID, s.caps.PublishAssignsID)
	}
	first := s.next(ch, "the first delivery")
	second := s.next(ch, "the redelivery")
	if first.ID == "" || second.ID != first.ID {
		t.Fatalf("delivered as %q, redelivered as %q: want one non-empty ID", first.ID, second.ID)
	}
	if sent.ID != "" && first.ID != sent.ID {
		t.Errorf("delivered as %q, Publish assigned %q", first.ID, sent.ID)
	}
	if !second.Time.Equal(first.Time) {
		t.Errorf("Time %v on the first delivery, %v on the redelivery", first.Time, second.Time)
	}
}

// retryAfterDelays: RetryAfter holds the redelivery back for no less than
// the delay.
func (s *suite) retryAfterDelays(t *testing.T) {
	const delay = time.Second
	var failedAt atomic.Int64 // UnixNano, written by the handler
	_, _ = s.redeliveryCase(t, func(context.Context, *messaging.Message) error {
		failedAt.Store(time.Now().UnixNano())
		return messaging.RetryAfter(errors.New("integration: later"), delay)
	})
	// The channel send happens before fail() runs, so measure from failedAt
	// to now, which is after the redelivery arrived.
	if waited := time.Since(time.Unix(0, failedAt.Load())); waited < delay {
		t.Errorf("redelivered %v after RetryAfter(%v)", waited, delay)
	}
}

// panicRedelivers: a panic is a failure, not a crash, and means redelivery.
func (s *suite) panicRedelivers(t *testing.T) {
	s.redeliveryCase(t, func(context.Context, *messaging.Message) error { panic("handler bug") })
}

// cancelRedelivers: cancelling the subscription while a handler runs makes
// the message come back to the group, not to the cancelled subscription's
// handler, and Done follows promptly.
func (s *suite) cancelRedelivers(t *testing.T) {
	g := s.group("cancel")
	s.provision(g)
	started := make(chan struct{}, 1)
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(t.Context())
	sub := s.subscribe(ctx, s.c, func(ctx context.Context, m *messaging.Message) error {
		if calls.Add(1) == 1 {
			started <- struct{}{}
		}
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group(g))
	s.publish(s.c, &messaging.Message{ID: "cancel-me", Payload: []byte("x")})
	select {
	case <-started:
	case <-time.After(s.h.Timeout):
		t.Fatal("handler never started")
	}
	cancel()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("subscription did not end within 10s of its context being cancelled")
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err after cancel: %v, want nil", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the cancelled subscription's handler ran %d times, want once", n)
	}
	ch, h := receive(1)
	s.subscribe(t.Context(), h2(s, t), h, messaging.Group(g))
	m := s.next(ch, "the redelivery to another member")
	if m.ID != "cancel-me" {
		t.Fatalf("got %s, want cancel-me", m.ID)
	}
	if s.caps.BrokerAttempts && m.Attempt < 2 {
		t.Errorf("Attempt %d after a cancelled delivery, want >= 2 (the adapter claims BrokerAttempts)", m.Attempt)
	}
}

// permanentNotRedelivered: a Permanent error settles the message for good.
// Absence can only be observed over time: after the poison message, markers
// are sent and handled one by one; a redelivery of the poison would come
// before or among them.
func (s *suite) permanentNotRedelivered(t *testing.T) {
	g := s.group("perm")
	s.provision(g)
	col := NewCollector()
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		col.Add(m)
		if m.ID == "poison" {
			return messaging.Permanent(errors.New("integration: cannot decode"))
		}
		return nil
	}, messaging.Group(g), messaging.AckDeadline(s.h.AckDeadline))
	s.publish(s.c, &messaging.Message{ID: "poison", Payload: []byte("?")})
	col.WaitDistinct(t, 1, s.h.Timeout)
	s.observeWithMarkers(col, 1)
	if n := col.Count("poison"); n != 1 {
		t.Fatalf("message failed with Permanent was delivered %d times, want 1", n)
	}
}

// observeWithMarkers bounds the observation of an absence (no further
// redelivery): it publishes marker messages one at a time and waits for each,
// for at least three markers and one ack deadline plus a second. col has
// seen `distinct` distinct messages before the first marker.
func (s *suite) observeWithMarkers(col *Collector, distinct int) {
	s.t.Helper()
	deadline := time.Now().Add(s.h.AckDeadline + time.Second)
	for i := 0; time.Now().Before(deadline) || i < 3; i++ {
		s.publish(s.c, &messaging.Message{ID: fmt.Sprintf("marker-%d", i)})
		col.WaitDistinct(s.t, distinct+i+1, s.h.Timeout)
	}
}

// maxAttempts: with MaxAttempts(3) a message failing forever is delivered
// exactly 3 times.
func (s *suite) maxAttempts(t *testing.T) {
	g := s.group("max")
	s.provision(g)
	col := NewCollector()
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		col.Add(m)
		if m.ID == "always-fails" {
			return errors.New("integration: still broken")
		}
		return nil
	}, messaging.Group(g), messaging.MaxAttempts(3), messaging.AckDeadline(s.h.AckDeadline))
	s.publish(s.c, &messaging.Message{ID: "always-fails"})
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Count("always-fails") >= 3 }) {
		t.Fatalf("delivered %d times, want 3", col.Count("always-fails"))
	}
	// A fourth delivery would follow promptly (no delay was asked for).
	s.observeWithMarkers(col, 1)
	if n := col.Count("always-fails"); n != 3 {
		t.Fatalf("delivered %d times with MaxAttempts(3), want exactly 3", n)
	}
}

// ackDeadline: a message whose consumer stops responding (crashed, or stuck
// where the adapter does not extend deadlines) goes to another member after
// the ack deadline.
func (s *suite) ackDeadline(t *testing.T) {
	g := s.group("deadline")
	s.provision(g)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	crashed := s.h.client(t)
	s.subscribe(t.Context(), crashed, func(ctx context.Context, m *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return nil
	}, messaging.Group(g), messaging.AckDeadline(s.h.AckDeadline))
	// Registered after the subscription, so it runs before the subscription's
	// Close, which waits for this handler.
	t.Cleanup(func() { close(release) })
	s.publish(s.c, &messaging.Message{ID: "abandoned"})
	select {
	case <-started:
	case <-time.After(s.h.Timeout):
		t.Fatal("first handler never started")
	}
	if s.h.Kill != nil {
		s.h.Kill(t, crashed)
	}
	begin := time.Now()
	ch, h := receive(1)
	s.subscribe(t.Context(), s.c, h, messaging.Group(g), messaging.AckDeadline(s.h.AckDeadline))
	m := s.next(ch, "redelivery after the ack deadline")
	if m.ID != "abandoned" {
		t.Fatalf("got %s, want abandoned", m.ID)
	}
	if s.caps.BrokerAttempts && m.Attempt < 2 {
		t.Errorf("Attempt %d on redelivery, want >= 2", m.Attempt)
	}
	took := time.Since(begin)
	t.Logf("redelivered %v after the crash (ack deadline %v)", took, s.h.AckDeadline)
	// The deadline plus the adapter's reclaim cadence (Redis: XAUTOCLAIM
	// every AckDeadline/4; RabbitMQ redelivers at the connection loss,
	// whatever the deadline) and slack for a loaded machine; far below
	// DefaultAckDeadline, so an adapter ignoring the option fails.
	if bound := ackDeadlineBound(s.h.AckDeadline); took > bound {
		t.Errorf("redelivered %v after the crash with AckDeadline %v, want within %v", took, s.h.AckDeadline, bound)
	}
}

// ackDeadlineBound is how soon after a consumer's crash the ack-deadline
// case wants the redelivery.
func ackDeadlineBound(d time.Duration) time.Duration { return 2*d + 5*time.Second }

// perKeyOrder: with concurrency > 1, messages with the same key are still
// handled in publish order.
func (s *suite) perKeyOrder(t *testing.T) {
	const keys, perKey = 8, 40
	g := s.group("order")
	s.provision(g)
	var order orderChecker
	col := NewCollector()
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		order.see(m)
		col.Add(m)
		return nil
	}, messaging.Group(g), messaging.Concurrency(4))
	var published []string
	for round := range perKey / 10 {
		var batch []*messaging.Message
		for i := range 10 {
			seq := round*10 + i
			for k := range keys {
				batch = append(batch, &messaging.Message{ID: fmt.Sprintf("k%d-%d", k, seq), Key: fmt.Sprintf("k%d", k), Payload: []byte(strconv.Itoa(seq))})
			}
		}
		s.publish(s.c, batch...)
		published = append(published, ids(batch)...)
	}
	col.WaitDistinct(t, len(published), s.h.Timeout)
	col.Report(t, published)
	order.check(t)
}

// orderChecker checks per-key order on delivery: each message's payload is
// its sequence number within its key, and first deliveries (Attempt 1) of a
// key must come in increasing order.
type orderChecker struct {
	mu         sync.Mutex
	last       map[string]int
	violations []string
}

func (o *orderChecker) see(m *messaging.Message) {
	seq, _ := strconv.Atoi(string(m.Payload))
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.last == nil {
		o.last = map[string]int{}
	}
	if prev, ok := o.last[m.Key]; ok && seq <= prev && m.Attempt == 1 {
		o.violations = append(o.violations, fmt.Sprintf("key %s: %d after %d", m.Key, seq, prev))
	}
	o.last[m.Key] = max(o.last[m.Key], seq)
}

// check fails t when any delivery broke the order.
func (o *orderChecker) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Fatalf("%d order violations, e.g. %v", len(o.violations), o.violations[:min(5, len(o.violations))])
	}
}

// stream returns the client as a Stream; adapters claiming Replay must be one.
func (s *suite) stream() messaging.Stream {
	st, ok := s.c.(messaging.Stream)
	if !ok {
		s.t.Fatalf("%T claims Replay but does not implement messaging.Stream", s.c)
	}
	return st
}

// read starts a Stream read and returns its deliveries.
func (s *suite) read(from messaging.Position) chan *messaging.Message {
	s.t.Helper()
	ch, h := receive(100)
	sub, err := s.stream().Read(s.t.Context(), s.topic, from, h)
	if err != nil {
		s.t.Fatalf("Read from %v: %v", from, err)
	}
	s.t.Cleanup(func() { _ = sub.Close() })
	return ch
}

// expectFirst reads from "from" and checks the first IDs delivered.
func (s *suite) expectFirst(from messaging.Position, want ...string) []*messaging.Message {
	s.t.Helper()
	ch := s.read(from)
	var got []*messaging.Message
	for i, id := range want {
		m := s.next(ch, fmt.Sprintf("message %d (%s) reading from %v", i, id, from))
		got = append(got, m)
		if m.ID != id {
			s.t.Fatalf("reading from %v: message %d is %s, want %s", from, i, m.ID, id)
		}
		if m.Attempt != 1 {
			s.t.Errorf("reading from %v: Attempt %d, want 1", from, m.Attempt)
		}
		if m.Group != "" {
			s.t.Errorf("reading from %v: Group %q, want empty (a read is group-less)", from, m.Group)
		}
	}
	return got
}

// readHandlerErrorEnds: a Read handler's error ends the read, handing it
// nothing more, and the Subscription's Err reports it (wraps it); the read
// resumes from the last message handled with AfterOffset.
func (s *suite) readHandlerErrorEnds(t *testing.T) {
	msgs := numbered("rerr", 3)
	for _, m := range msgs {
		m.Key = "one-key" // one partition, so log order is publish order
	}
	s.publish(s.c, msgs...)
	errStop := errors.New("integration: reader stops here")
	var mu sync.Mutex
	var got []*messaging.Message
	sub, err := s.stream().Read(t.Context(), s.topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == 2 {
			return errStop
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case <-sub.Done():
	case <-time.After(s.h.Timeout):
		t.Fatalf("the read did not end within %v of its handler's error", s.h.Timeout)
	}
	if err := sub.Err(); !errors.Is(err, errStop) {
		t.Errorf("Err after the handler's error: %v, want it wrapping %v", err, errStop)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].ID != msgs[0].ID || got[1].ID != msgs[1].ID {
		t.Fatalf("the read handed %v, want %s then %s and nothing after the error", ids(got), msgs[0].ID, msgs[1].ID)
	}
	s.expectFirst(messaging.AfterOffset(got[0].Offset), ids(msgs[1:])...)
}

// replay: Read from earliest, latest, an offset and after an offset.
func (s *suite) replay(t *testing.T) {
	msgs := numbered("r", 10)
	for _, m := range msgs {
		m.Key = "one-key" // one partition, so log order is publish order
	}
	s.publish(s.c, msgs...)
	all := s.expectFirst(messaging.Earliest, ids(msgs)...)
	for i, m := range all {
		if m.Offset == "" {
			t.Fatalf("message %d read from the log has no Offset", i)
		}
	}
	s.expectFirst(messaging.AtOffset(all[3].Offset), ids(msgs[3:])...)
	s.expectFirst(messaging.AfterOffset(all[3].Offset), ids(msgs[4:])...)
	// Positioned after the last message, and at Latest: nothing yet, so the
	// live message published next is the first thing each delivers.
	afterLast := s.read(messaging.AfterOffset(all[9].Offset))
	ch := s.read(messaging.Latest)
	live := &messaging.Message{ID: "after-latest", Key: "one-key"}
	s.publish(s.c, live)
	if m := s.next(afterLast, "a message published after reading after the last offset"); m.ID != live.ID {
		t.Fatalf("reading after the last offset %s delivered %s first, want %s", all[9].Offset, m.ID, live.ID)
	}
	if m := s.next(ch, "a message published after reading from Latest"); m.ID != live.ID {
		t.Fatalf("reading from Latest delivered %s first, want %s", m.ID, live.ID)
	}
	if _, err := s.stream().Read(t.Context(), s.topic, messaging.AtOffset(""), func(context.Context, *messaging.Message) error { return nil }); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Read from an empty offset: %v, want ErrInvalidOption", err)
	}
}

// replayByTime: Read from a time skips what was published before it. Time
// is the subject here, so the case sleeps to separate the two halves.
func (s *suite) replayByTime(t *testing.T) {
	early := numbered("early", 5)
	late := numbered("late", 5)
	for _, m := range append(early, late...) {
		m.Key = "one-key"
	}
	s.publish(s.c, early...)
	time.Sleep(s.h.TimeGap)
	middle := time.Now()
	time.Sleep(s.h.TimeGap)
	s.publish(s.c, late...)
	s.expectFirst(messaging.AtTime(middle), ids(late)...)
}

// replayKeepsGroups: reading the log does not move or disturb a group.
func (s *suite) replayKeepsGroups(t *testing.T) {
	g := s.group("live")
	s.provision(g)
	col := NewCollector()
	s.subscribe(t.Context(), s.c, col.Handler(), messaging.Group(g))
	msgs := numbered("keep", 5)
	s.publish(s.c, msgs...)
	col.WaitDistinct(t, 5, s.h.Timeout)
	s.expectFirst(messaging.Earliest, ids(msgs)...)
	s.publish(s.c, &messaging.Message{ID: "keep-next"})
	col.WaitDistinct(t, 6, s.h.Timeout)
	if col.Duplicates() != 0 || col.Total() != 6 {
		t.Fatalf("group saw %d deliveries (%d duplicates) after a replay, want exactly 6", col.Total(), col.Duplicates())
	}
}

// groupStartAt: a new group starts at Earliest by default (keeping what was
// published before it existed) and at Latest when asked.
func (s *suite) groupStartAt(t *testing.T) {
	before := numbered("before", 3)
	s.publish(s.c, before...)
	ch, h := receive(10)
	s.subscribe(t.Context(), s.c, h, messaging.Group(s.group("fromstart")))
	for i := range before {
		if m := s.next(ch, "messages published before the group existed"); m.ID != before[i].ID {
			t.Fatalf("new group's message %d is %s, want %s", i, m.ID, before[i].ID)
		}
	}
	ch2, h2x := receive(10)
	s.subscribe(t.Context(), s.c, h2x, messaging.Group(s.group("fromlatest")), messaging.StartAt(messaging.Latest))
	s.publish(s.c, &messaging.Message{ID: "after"})
	if m := s.next(ch2, "a message after a Latest group subscribed"); m.ID != "after" {
		t.Fatalf("group started at Latest got %s, want after", m.ID)
	}
}

// count10000: 10,000 messages from 4 concurrent publishers, consumed by two
// members of a group: every confirmed message arrives; duplicates are
// reported.
func (s *suite) count10000(t *testing.T) {
	const publishers, perPublisher, batch = 4, 2500, 50
	g := s.group("count")
	s.provision(g)
	col := NewCollector()
	s.subscribe(t.Context(), s.c, col.Handler(), messaging.Group(g), messaging.Concurrency(4))
	s.subscribe(t.Context(), h2(s, t), col.Handler(), messaging.Group(g), messaging.Concurrency(4))
	var (
		mu        sync.Mutex
		published []string
		wg        sync.WaitGroup
	)
	start := time.Now()
	for p := range publishers {
		wg.Go(func() {
			for b := 0; b < perPublisher/batch; b++ {
				msgs := make([]*messaging.Message, batch)
				for i := range msgs {
					msgs[i] = &messaging.Message{Payload: []byte(fmt.Sprintf("p%d-%d", p, b*batch+i))}
				}
				WithIDs(s.c, msgs...) // counted by ID
				if err := s.c.Publish(t.Context(), s.topic, msgs...); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
				mu.Lock()
				published = append(published, ids(msgs)...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	col.WaitDistinct(t, len(published), 3*s.h.Timeout)
	col.Report(t, published)
	t.Logf("%d messages published and consumed in %v", len(published), time.Since(start))
}

// closeSemantics: Close is idempotent, ends subscriptions, and makes every
// further call the client implements fail with ErrClosed at once.
func (s *suite) closeSemantics(t *testing.T) {
	c := s.h.Open(t)
	sub, err := c.Subscribe(t.Context(), s.topic, func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("subscription still running 10s after the client was closed")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	checkClosed(t, c, s.topic, "Close", false)
	if err := sub.Close(); err != nil {
		t.Errorf("Subscription.Close after client Close: %v", err)
	}
}

// checkClosed makes every call c implements (clientCalls; with
// consumerOnly, those of its consumer side) and checks that each fails at
// once with ErrClosed, as it must after c's Close (every call) or Shutdown
// (the consumer side), named by after.
func checkClosed(t *testing.T, c messaging.Client, topic, after string, consumerOnly bool) {
	t.Helper()
	for _, call := range clientCalls(c, topic) {
		if consumerOnly && !call.consumer {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		start := time.Now()
		err := call.do(ctx)
		took := time.Since(start)
		cancel()
		switch {
		case !errors.Is(err, messaging.ErrClosed):
			t.Errorf("%s after %s: %v, want an error wrapping ErrClosed", call.name, after, err)
		case took > time.Second:
			t.Errorf("%s after %s took %v: want ErrClosed at once, not after a wait for the broker", call.name, after, took)
		}
	}
}

// cancelledContext: every call fails at once with the context's error when
// its context has ended before the call (Subscribe too, rather than return
// a subscription already over), unless the client does not support it at
// all (ErrUnsupported).
func (s *suite) cancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, call := range clientCalls(s.c, s.topic) {
		start := time.Now()
		err := call.do(ctx)
		took := time.Since(start)
		switch {
		case errors.Is(err, messaging.ErrUnsupported): // nothing it could do
		case !errors.Is(err, context.Canceled):
			t.Errorf("%s with a cancelled context: %v, want an error wrapping context.Canceled", call.name, err)
		case took > time.Second:
			t.Errorf("%s with a cancelled context took %v, want at once", call.name, took)
		}
	}
}

// edgeArguments: the calls' edge cases behave the same on every adapter: a
// Publish of no message does nothing and succeeds; a nil message or a nil
// handler is an ErrInvalidOption (PublishAsync reports a nil message to its
// callback, and accepts a nil callback); deleting a topic that does not
// exist succeeds, and TopicExists then says false; Provision without groups
// succeeds.
func (s *suite) edgeArguments(t *testing.T) {
	ctx := t.Context()
	missing := UniqueName(t, "missing")
	if err := s.c.Publish(ctx, s.topic); err != nil {
		t.Errorf("Publish of no message: %v, want nil", err)
	}
	if err := s.c.Publish(ctx, s.topic, nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Publish of a nil message: %v, want ErrInvalidOption", err)
	}
	if _, err := s.c.Subscribe(ctx, s.topic, nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Subscribe with a nil handler: %v, want ErrInvalidOption", err)
	}
	if b, ok := s.c.(messaging.BatchConsumer); ok {
		if _, err := b.SubscribeBatch(ctx, s.topic, nil); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("SubscribeBatch with a nil handler: %v, want ErrInvalidOption", err)
		}
	}
	if st, ok := s.c.(messaging.Stream); ok {
		if _, err := st.Read(ctx, s.topic, messaging.Earliest, nil); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("Read with a nil handler: %v, want ErrInvalidOption", err)
		}
	}
	if ap, ok := s.c.(messaging.AsyncPublisher); ok {
		if err := publishAsyncResult(ctx, ap, s.topic, nil); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("PublishAsync of a nil message: %v, want ErrInvalidOption", err)
		}
		ap.PublishAsync(ctx, s.topic, &messaging.Message{ID: "no-callback"}, nil)
		if err := ap.Flush(ctx); err != nil {
			t.Errorf("Flush after a PublishAsync without callback: %v", err)
		}
	}
	if d, ok := s.c.(messaging.TopicDeleter); ok {
		if err := d.DeleteTopic(ctx, missing); err != nil {
			t.Errorf("DeleteTopic of a missing topic: %v, want nil", err)
		}
	}
	if e, ok := s.c.(interface {
		TopicExists(context.Context, string) (bool, error)
	}); ok {
		if exists, err := e.TopicExists(ctx, missing); (err != nil && !errors.Is(err, messaging.ErrUnsupported)) || exists {
			t.Errorf("TopicExists of a missing topic: %v, %v, want false", exists, err)
		}
	}
	if p, ok := s.c.(messaging.Provisioner); ok {
		if err := p.Provision(ctx, s.topic); err != nil {
			t.Errorf("Provision without groups: %v, want nil", err)
		}
	}
}

// clientCall is one call of a client's contract, for the cases that make
// every call (closed client, bad names).
type clientCall struct {
	name      string
	consumer  bool // a call of the consumer side, refused after Shutdown too
	topicless bool // it takes no topic
	do        func(ctx context.Context) error
}

// clientCalls lists every call of the contract that c implements, on topic
// with otherwise valid arguments.
func clientCalls(c messaging.Client, topic string) []clientCall {
	noop := func(context.Context, *messaging.Message) error { return nil }
	calls := []clientCall{
		{"Publish", false, false, func(ctx context.Context) error {
			return c.Publish(ctx, topic, messaging.NewMessage([]byte("x")))
		}},
		{"Subscribe", true, false, func(ctx context.Context) error { _, err := c.Subscribe(ctx, topic, noop); return err }},
		{"Subscribe with a group", true, false, func(ctx context.Context) error {
			_, err := c.Subscribe(ctx, topic, noop, messaging.Group("closed"))
			return err
		}},
	}
	add := func(name string, do func(ctx context.Context) error) {
		calls = append(calls, clientCall{name, false, false, do})
	}
	consumer := func(name string, do func(ctx context.Context) error) {
		calls = append(calls, clientCall{name, true, false, do})
	}
	if b, ok := c.(messaging.BatchConsumer); ok {
		consumer("SubscribeBatch", func(ctx context.Context) error {
			_, err := b.SubscribeBatch(ctx, topic, func(context.Context, []*messaging.Message) []error { return nil })
			return err
		})
	}
	if st, ok := c.(messaging.Stream); ok {
		consumer("Read", func(ctx context.Context) error { _, err := st.Read(ctx, topic, messaging.Earliest, noop); return err })
	}
	if p, ok := c.(messaging.Provisioner); ok {
		add("Provision", func(ctx context.Context) error { return p.Provision(ctx, topic, "closed") })
	}
	if d, ok := c.(messaging.TopicDeleter); ok {
		add("DeleteTopic", func(ctx context.Context) error { return d.DeleteTopic(ctx, topic) })
	}
	if e, ok := c.(interface {
		TopicExists(context.Context, string) (bool, error)
	}); ok {
		add("TopicExists", func(ctx context.Context) error { _, err := e.TopicExists(ctx, topic); return err })
	}
	if in, ok := c.(messaging.Inspector); ok {
		add("Inspect", func(ctx context.Context) error { _, err := in.Inspect(ctx, topic); return err })
	}
	if l, ok := c.(messaging.TopicLister); ok {
		calls = append(calls, clientCall{"Topics", false, true, func(ctx context.Context) error { _, err := l.Topics(ctx); return err }})
	}
	if ap, ok := c.(messaging.AsyncPublisher); ok {
		add("PublishAsync", func(ctx context.Context) error {
			return publishAsyncResult(ctx, ap, topic, messaging.NewMessage([]byte("x")))
		})
	}
	if r, ok := c.(messaging.Requester); ok {
		add("Request", func(ctx context.Context) error {
			_, err := r.Request(ctx, topic, messaging.NewMessage([]byte("x")))
			return err
		})
		consumer("Serve", func(ctx context.Context) error {
			_, err := r.Serve(ctx, topic, func(context.Context, *messaging.Message) (*messaging.Message, error) { return nil, nil })
			return err
		})
	}
	return calls
}

// cancelPrompt: a subscription ends promptly when its context is cancelled,
// with a nil Err, and Close after that is harmless.
func (s *suite) cancelPrompt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	sub := s.subscribe(ctx, s.c, func(context.Context, *messaging.Message) error { return nil })
	cancel()
	select {
	case <-sub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("subscription still running 5s after its context was cancelled")
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err: %v, want nil after cancellation", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("Close after cancellation: %v", err)
	}
}

// publishAsyncResult publishes m with PublishAsync and returns its result,
// or an error when none came within 5s.
func publishAsyncResult(ctx context.Context, ap messaging.AsyncPublisher, topic string, m *messaging.Message) error {
	res := make(chan error, 1)
	ap.PublishAsync(ctx, topic, m, func(_ *messaging.Message, err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("integration: no result 5s after PublishAsync")
	}
}
