package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// asyncCases are the cases of messaging.AsyncPublisher, run for clients that
// implement it.
func asyncCases(async bool) []conformanceCase {
	return []conformanceCase{
		{"AsyncPublish", "AsyncPublisher", async, (*suite).asyncPublish},
		{"AsyncPublishCancel", "AsyncPublisher", async, (*suite).asyncCancel},
		{"AsyncPublishClose", "AsyncPublisher", async, (*suite).asyncClose},
		{"AsyncPublishAfterClose", "AsyncPublisher", async, (*suite).asyncAfterClose},
		{"AsyncPublishWithoutCallback", "AsyncPublisher", async, (*suite).asyncWithoutCallback},
		{"AsyncFlushWaitsForCallback", "AsyncPublisher", async, (*suite).asyncFlushWaitsForCallback},
	}
}

// asyncResults records the callbacks of messages given to PublishAsync.
type asyncResults struct {
	msgs []*messaging.Message

	mu    sync.Mutex
	calls []int
	errs  []error
	wrong []string // callbacks with another message than their own
}

func newAsyncResults(msgs []*messaging.Message) *asyncResults {
	return &asyncResults{msgs: msgs, calls: make([]int, len(msgs)), errs: make([]error, len(msgs))}
}

func (r *asyncResults) callback(i int) messaging.PublishCallback {
	return func(m *messaging.Message, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls[i]++
		r.errs[i] = err
		if m != r.msgs[i] {
			r.wrong = append(r.wrong, fmt.Sprintf("message %d", i))
		}
	}
}

// publish gives the messages from to to PublishAsync from the calling
// goroutine.
func (r *asyncResults) publish(ctx context.Context, p messaging.AsyncPublisher, topic string, from, to int) {
	for i := from; i < to; i++ {
		p.PublishAsync(ctx, topic, r.msgs[i], r.callback(i))
	}
}

// oneResult returns a callback and a function returning the results it got.
func oneResult() (messaging.PublishCallback, func() []error) {
	var mu sync.Mutex
	var errs []error
	return func(_ *messaging.Message, err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}, func() []error {
			mu.Lock()
			defer mu.Unlock()
			return append([]error(nil), errs...)
		}
}

// check fails t unless every message had exactly one callback, with its
// own message.
func (r *asyncResults) check(t *testing.T, when string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for i, n := range r.calls {
		if n != 1 {
			bad = append(bad, fmt.Sprintf("message %d: %d callbacks", i, n))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%s: %d messages without exactly one result, e.g. %v", when, len(bad), bad[:min(5, len(bad))])
	}
	if len(r.wrong) > 0 {
		t.Fatalf("%s: callbacks given another message: %v", when, r.wrong[:min(5, len(r.wrong))])
	}
}

// accepted returns the IDs of the messages whose result was nil, and the
// errors of the others.
func (r *asyncResults) accepted() (ids []string, failed map[int]error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	failed = map[int]error{}
	for i, err := range r.errs {
		if err == nil {
			ids = append(ids, r.msgs[i].ID)
		} else {
			failed[i] = err
		}
	}
	return ids, failed
}

// asyncSubscribe subscribes to the suite's topic with a group where the
// adapter has groups (provisioned first) and without one otherwise, and
// returns the collector of deliveries and the per-key order checker
// (messages carry their sequence per key as payload).
func (s *suite) asyncSubscribe(t *testing.T) (*Collector, *orderChecker) {
	var opts []messaging.SubscribeOption
	if s.caps.Groups {
		g := s.group("async")
		s.provision(g)
		opts = append(opts, messaging.Group(g))
	}
	if s.caps.PerKeyOrder {
		opts = append(opts, messaging.Concurrency(4))
	}
	order := &orderChecker{}
	col := NewCollector()
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		order.see(m)
		col.Add(m)
		return nil
	}, opts...)
	return col, order
}

// keyed returns n messages over keys keys, each payload its sequence number
// within its key.
func keyed(prefix string, n, keys int) []*messaging.Message {
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		k := i % keys
		msgs[i] = &messaging.Message{ID: fmt.Sprintf("%s-%d", prefix, i), Key: fmt.Sprintf("k%d", k), Payload: []byte(strconv.Itoa(i / keys))}
	}
	return msgs
}

// asyncPublish: messages given to PublishAsync from one goroutine each get
// exactly one result, Flush returns only after all of them, every accepted
// message is delivered, per-key order holds, an invalid message (or one on
// an invalid topic) fails alone with its own error while the others are
// sent, and (DedupeByID) a repeated ID is reported as ErrDuplicate.
func (s *suite) asyncPublish(t *testing.T) {
	run := s.startAsync(t, "async", 3000)
	ap, msgs, bad := run.ap, run.msgs, run.bad
	r := newAsyncResults(msgs)
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	defer cancel()
	r.publish(ctx, ap, s.topic, 0, len(msgs))
	onBadTopic, badTopicResults := oneResult()
	ap.PublishAsync(ctx, "", messaging.NewMessage([]byte("x")), onBadTopic)
	if err := ap.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	r.check(t, "after Flush")
	if badTopic := badTopicResults(); len(badTopic) != 1 || !errors.Is(badTopic[0], messaging.ErrInvalidTopic) {
		t.Errorf("empty topic: results %v, want one wrapping ErrInvalidTopic", badTopic)
	}
	ok, failed := r.accepted()
	if len(failed) != 1 || !errors.Is(failed[bad], messaging.ErrInvalidHeader) {
		t.Fatalf("failed messages %v, want only message %d with ErrInvalidHeader", failed, bad)
	}
	if e := failed[bad].Error(); messageIndex.MatchString(e) {
		// The callback says which message failed: an index in its error
		// ("message 0", its place in a call of one) names none.
		t.Errorf("invalid message: error %q names a message index", e)
	}
	for i, m := range msgs {
		if s.caps.PublishAssignsID && i != bad && (m.ID == "" || m.Time.IsZero()) {
			t.Fatalf("message %d: ID %q, Time %v: PublishAsync must set them (PublishAssignsID)", i, m.ID, m.Time)
		}
	}
	s.checkAsync(t, run, ok)
	if err := ap.Flush(ctx); err != nil {
		t.Errorf("Flush with nothing pending: %v", err)
	}
	if s.caps.DedupeByID {
		// A message with the ID of one the broker holds is reported as a
		// duplicate, on its own.
		onDup, dupResults := oneResult()
		ap.PublishAsync(ctx, s.topic, &messaging.Message{ID: msgs[0].ID, Key: msgs[0].Key, Payload: []byte("dup")}, onDup)
		if err := ap.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		if dup := dupResults(); len(dup) != 1 || !errors.Is(dup[0], messaging.ErrDuplicate) {
			t.Errorf("repeated ID: results %v, want one wrapping ErrDuplicate", dup)
		}
	}
}

// messageIndex matches a message's index in an error, as Publish names
// the failed message of a call of several.
var messageIndex = regexp.MustCompile(`\bmessage \d+\b`)

// asyncWithoutCallback: messages given to PublishAsync without a callback
// (done nil: fire and forget) are sent as the others are. After Flush
// every valid one is delivered, in per-key order, and (PublishAssignsID)
// has its ID and Time; an invalid one, or one on an invalid topic, is
// dropped alone, without a panic; the message with a callback among them
// gets its one result.
func (s *suite) asyncWithoutCallback(t *testing.T) {
	const n = 1000
	run := s.startAsync(t, "loose", n)
	ap, msgs := run.ap, run.msgs
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	defer cancel()
	onLast, lastResults := oneResult()
	for i, m := range msgs[:n-1] {
		ap.PublishAsync(ctx, s.topic, m, nil)
		if i == n/4 {
			ap.PublishAsync(ctx, "", messaging.NewMessage([]byte("x")), nil)
		}
	}
	ap.PublishAsync(ctx, s.topic, msgs[n-1], onLast)
	if err := ap.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if last := lastResults(); len(last) != 1 || last[0] != nil {
		t.Fatalf("the message with a callback: results %v, want one nil", last)
	}
	var ok []string
	for i, m := range msgs {
		if i == run.bad {
			continue
		}
		ok = append(ok, m.ID)
		if s.caps.PublishAssignsID && m.Time.IsZero() {
			t.Fatalf("message %d: Time not set: PublishAsync must set it (PublishAssignsID)", i)
		}
	}
	s.checkAsync(t, run, ok)
}

// asyncRun is what the AsyncPublish cases start with: a subscription to
// the suite's topic (see asyncSubscribe) and keyed messages for it, one of
// them (bad) with a header ValidateHeader refuses.
type asyncRun struct {
	ap    messaging.AsyncPublisher
	col   *Collector
	order *orderChecker
	msgs  []*messaging.Message
	bad   int
}

func (s *suite) startAsync(t *testing.T, prefix string, n int) *asyncRun {
	col, order := s.asyncSubscribe(t)
	msgs := keyed(prefix, n, 8)
	bad := n / 2
	msgs[bad].Header = messaging.Header{"msgkit-reserved": "x"} // refused by ValidateHeader
	return &asyncRun{ap: s.c.(messaging.AsyncPublisher), col: col, order: order, msgs: msgs, bad: bad}
}

// checkAsync waits for the messages ok, then checks that the invalid one was
// not delivered and (PerKeyOrder) the order per key.
func (s *suite) checkAsync(t *testing.T, run *asyncRun, ok []string) {
	t.Helper()
	run.col.WaitDistinct(t, len(ok), s.h.Timeout)
	run.col.Report(t, ok)
	if run.col.Count(run.msgs[run.bad].ID) != 0 {
		t.Errorf("the invalid message was delivered")
	}
	if s.caps.PerKeyOrder {
		run.order.check(t)
	}
}

// asyncCancel: cancelling the context of messages in flight leaves each with
// exactly one result, nil (and then delivered) or the context's error;
// messages given with a done context fail with its error.
func (s *suite) asyncCancel(t *testing.T) {
	const n = 2000
	ap := s.c.(messaging.AsyncPublisher)
	col, _ := s.asyncSubscribe(t)
	msgs := keyed("cancel", n, 4)
	r := newAsyncResults(msgs)
	ctx, cancel := context.WithCancel(t.Context())
	r.publish(ctx, ap, s.topic, 0, n/2)
	cancel()
	r.publish(ctx, ap, s.topic, n/2, n)
	fctx, fcancel := context.WithTimeout(t.Context(), s.h.Timeout)
	defer fcancel()
	if err := ap.Flush(fctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	r.check(t, "after Flush")
	ok, failed := r.accepted()
	for i, err := range failed {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("message %d: %v, want nil or an error wrapping context.Canceled", i, err)
		}
	}
	for i := n / 2; i < n; i++ {
		if _, f := failed[i]; !f {
			t.Fatalf("message %d, given with a cancelled context, was accepted", i)
		}
	}
	t.Logf("%d of %d messages accepted before the cancellation", len(ok), n/2)
	col.WaitDistinct(t, len(ok), s.h.Timeout)
	col.Report(t, ok)
}

// asyncClose: Close with messages pending returns after each has exactly one
// result, nil (and then delivered) or an error wrapping ErrClosed, and
// PublishAsync after Close fails at once with ErrClosed.
func (s *suite) asyncClose(t *testing.T) {
	const n = 2000
	col, _ := s.asyncSubscribe(t)
	c := s.h.Open(t)
	ap := c.(messaging.AsyncPublisher)
	msgs := keyed("close", n, 4)
	r := newAsyncResults(msgs)
	r.publish(t.Context(), ap, s.topic, 0, n)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.check(t, "after Close")
	ok, failed := r.accepted()
	for i, err := range failed {
		if !errors.Is(err, messaging.ErrClosed) {
			t.Fatalf("message %d: %v, want nil or an error wrapping ErrClosed", i, err)
		}
	}
	t.Logf("%d of %d messages accepted before Close", len(ok), n)
	onLate, lateResults := oneResult()
	ap.PublishAsync(t.Context(), s.topic, messaging.NewMessage([]byte("late")), onLate)
	if after := lateResults(); len(after) != 1 || !errors.Is(after[0], messaging.ErrClosed) {
		t.Errorf("PublishAsync after Close: results %v before it returned, want one wrapping ErrClosed", after)
	}
	if err := ap.Flush(t.Context()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	col.WaitDistinct(t, len(ok), s.h.Timeout)
	col.Report(t, ok)
}

// asyncAfterClose: on a client closed before it ever published
// asynchronously, PublishAsync fails at once with ErrClosed (as after a
// Close with messages pending, asyncClose), and Flush returns nil.
func (s *suite) asyncAfterClose(t *testing.T) {
	c := s.h.Open(t)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ap := c.(messaging.AsyncPublisher)
	const n = 100
	msgs := keyed("after-close", n, 4)
	r := newAsyncResults(msgs)
	for i := range n {
		r.publish(t.Context(), ap, s.topic, i, i+1)
		r.mu.Lock()
		calls, err := r.calls[i], r.errs[i]
		r.mu.Unlock()
		if calls != 1 || !errors.Is(err, messaging.ErrClosed) {
			t.Fatalf("PublishAsync %d after Close: %d results before it returned (%v), want one wrapping ErrClosed", i, calls, err)
		}
	}
	if err := ap.Flush(t.Context()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
	r.check(t, "after Flush")
}

// asyncFlushWaitsForCallback: Flush waits for the callback of a message
// given to PublishAsync on another goroutine until that callback has
// returned ("Flush waits until every message given to PublishAsync on this
// client, including those given concurrently while it waits, has its
// result and its callback has returned"): for a message that is sent, and
// for one PublishAsync fails at once (an invalid header), whose callback
// may run on the calling goroutine.
func (s *suite) asyncFlushWaitsForCallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  *messaging.Message
		want error // nil: the message is accepted
	}{
		{"accepted", messaging.NewMessage([]byte("flush-waits")), nil},
		{"invalid", &messaging.Message{Payload: []byte("x"), Header: messaging.Header{"msgkit-reserved": "x"}}, messaging.ErrInvalidHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s.caps.Groups { // a group to route to (RabbitMQ)
				s.provision(s.group("flush"))
			}
			c := s.h.Open(t)
			t.Cleanup(func() { _ = c.Close() })
			ap := c.(messaging.AsyncPublisher)
			inCallback, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
			go func() {
				defer close(returned)
				ap.PublishAsync(t.Context(), s.topic, tc.msg, func(_ *messaging.Message, err error) {
					if !errors.Is(err, tc.want) {
						t.Errorf("PublishAsync: %v, want %v", err, tc.want)
					}
					close(inCallback)
					<-release
				})
			}()
			select {
			case <-inCallback:
			case <-time.After(s.h.Timeout):
				close(release)
				t.Fatalf("no callback within %v", s.h.Timeout)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			err := ap.Flush(ctx)
			close(release)
			<-returned
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Flush while a PublishAsync callback runs: %v, want it to wait (an error wrapping context.DeadlineExceeded at its ctx's end)", err)
			}
			if err := ap.Flush(t.Context()); err != nil {
				t.Fatalf("Flush once the callback returned: %v", err)
			}
		})
	}
}
