package deadletter_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/retry"
)

var errBoom = errors.New("boom")

// recorder is a Publisher that keeps what it is given, or fails.
type recorder struct {
	mu   sync.Mutex
	fail error
	got  map[string][]*messaging.Message
}

func (r *recorder) Publish(_ context.Context, topic string, msgs ...*messaging.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if r.got == nil {
		r.got = map[string][]*messaging.Message{}
	}
	for _, m := range msgs {
		r.got[topic] = append(r.got[topic], m.Clone())
	}
	return nil
}
func (r *recorder) Close() error { return nil }

func (r *recorder) sent(topic string) []*messaging.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[topic]
}

func delivered() *messaging.Message {
	return &messaging.Message{
		ID: "m1", Key: "k1", Payload: []byte("payload"), Topic: "orders", Group: "billing", Attempt: 3,
		Header: messaging.Header{"app": "v", deadletter.HeaderReason: "stale"},
	}
}

func TestPermanentFailureIsDeadLettered(t *testing.T) {
	rec := &recorder{}
	h := mwtest.Must(deadletter.New(rec, "orders.dlq"))(func(context.Context, *messaging.Message) error {
		return messaging.Permanent(errBoom)
	})
	before := time.Now().UTC()
	if err := h(context.Background(), delivered()); err != nil {
		t.Fatalf("got %v, want nil (dead-lettered, so acknowledged)", err)
	}
	sent := rec.sent("orders.dlq")
	if len(sent) != 1 {
		t.Fatalf("%d dead letters, want 1", len(sent))
	}
	e, err := deadletter.Parse(sent[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.Topic != "orders" || e.Group != "billing" || e.Attempts != 3 || e.OriginalID != "m1" || !strings.Contains(e.Reason, "boom") {
		t.Errorf("entry %+v: wrong metadata", e)
	}
	if e.Time.Before(before.Add(-time.Second)) || e.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("dead-letter time %v not now", e.Time)
	}
	m := sent[0]
	if m.Key != "k1" || string(m.Payload) != "payload" || m.Header["app"] != "v" {
		t.Errorf("dead letter %+v lost key, payload or headers", m)
	}
	if m.ID == "m1" {
		t.Errorf("dead letter reuses the original ID")
	}
}

func TestTransientFailurePassesThrough(t *testing.T) {
	rec := &recorder{}
	h := mwtest.Must(deadletter.New(rec, "dlq"))(func(context.Context, *messaging.Message) error { return errBoom })
	if err := h(context.Background(), delivered()); !errors.Is(err, errBoom) {
		t.Fatalf("got %v, want the handler error", err)
	}
	if n := len(rec.sent("dlq")); n != 0 {
		t.Fatalf("%d dead letters for a transient failure", n)
	}
}

func TestMaxAttemptsWithoutRetry(t *testing.T) {
	rec := &recorder{}
	h := mwtest.Must(deadletter.New(rec, "dlq", deadletter.WithMaxAttempts(3)))(func(context.Context, *messaging.Message) error { return errBoom })
	m := delivered()
	m.Attempt = 2
	if err := h(context.Background(), m); err == nil {
		t.Fatal("attempt 2 of 3 was dead-lettered")
	}
	m.Attempt = 3
	if err := h(context.Background(), m); err != nil || len(rec.sent("dlq")) != 1 {
		t.Fatalf("attempt 3 of 3: got %v and %d letters, want nil and 1", err, len(rec.sent("dlq")))
	}
}

// TestSubscriptionMaxAttemptsIsDeadLettered: with the subscription's
// MaxAttempts(2) and no WithMaxAttempts nor retry layer, the second
// delivery's failure, which the subscription gives up, is dead-lettered
// (before, the layer returned it and the message was dropped: a trap for
// anyone who set MaxAttempts and expected dead letters).
func TestSubscriptionMaxAttemptsIsDeadLettered(t *testing.T) {
	rec := &recorder{}
	topic := mwtest.GiveUp(t, mwtest.Must(deadletter.New(rec, "dlq")))
	letters := rec.sent("dlq")
	if len(letters) != 1 {
		t.Fatalf("%d dead letters after the subscription's last attempt, want 1", len(letters))
	}
	e, err := deadletter.Parse(letters[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.Attempts != 2 || e.Topic != topic || !strings.Contains(e.Reason, "boom") {
		t.Errorf("dead letter: attempts %d, topic %q, reason %q; want 2, %q, the handler's error", e.Attempts, e.Topic, e.Reason, topic)
	}
}

// TestInterruptedLastAttemptIsNotDeadLettered: a handler that returns its
// context's error because its subscription stops is not a failure, even at
// the last attempt (the subscription's MaxAttempts or WithMaxAttempts):
// the message is neither dead-lettered nor acknowledged, but redelivered to
// the next subscriber.
func TestInterruptedLastAttemptIsNotDeadLettered(t *testing.T) {
	for name, opts := range map[string][]deadletter.Option{
		"subscription MaxAttempts": nil,
		"WithMaxAttempts":          {deadletter.WithMaxAttempts(1)},
	} {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			mwtest.Interrupt(t, mwtest.Must(deadletter.New(rec, "dlq", opts...)))
			if n := len(rec.sent("dlq")); n != 0 {
				t.Errorf("%d dead letters for a message no handler failed", n)
			}
		})
	}
}

func TestFailedDeadLetterPublishKeepsOriginal(t *testing.T) {
	rec := &recorder{fail: errors.New("broker down")}
	h := mwtest.Must(deadletter.New(rec, "dlq", deadletter.WithRetryDelay(3*time.Second)))(func(context.Context, *messaging.Message) error {
		return messaging.Permanent(errBoom)
	})
	err := h(context.Background(), delivered())
	if err == nil || messaging.IsPermanent(err) {
		t.Fatalf("got %v, want a non-permanent error so the original is not acknowledged", err)
	}
	if d, _ := messaging.RetryDelay(err); d != 3*time.Second {
		t.Errorf("retry delay %v, want 3s", d)
	}
}

func TestPublishSurvivesCancelledHandlerContext(t *testing.T) {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	h := mwtest.Must(deadletter.New(rec, "dlq"))(func(context.Context, *messaging.Message) error {
		cancel()
		return messaging.Permanent(errBoom)
	})
	if err := h(ctx, delivered()); err != nil || len(rec.sent("dlq")) != 1 {
		t.Fatalf("got %v and %d letters, want the letter published despite the cancelled context", err, len(rec.sent("dlq")))
	}
}

func TestInsideRetryStillDeadLetters(t *testing.T) {
	rec := &recorder{}
	// Wrong order: retry outside deadletter. The dead-letter layer sees the
	// retry layer and treats its last attempt as final.
	h := messaging.Chain(func(context.Context, *messaging.Message) error { return errBoom },
		mwtest.Must(retry.New(retry.WithMaxAttempts(3))), mwtest.Must(deadletter.New(rec, "dlq")))
	if err := middleware.Validate(mwtest.Must(retry.New(retry.WithMaxAttempts(3))), mwtest.Must(deadletter.New(rec, "dlq"))); err != nil {
		t.Fatalf("validate: %v (this order is made to work)", err)
	}
	m := delivered()
	m.Attempt = 2
	if err := h(context.Background(), m); err == nil || messaging.IsPermanent(err) {
		t.Fatalf("attempt 2: got %v, want a retry", err)
	}
	m.Attempt = 3
	if err := h(context.Background(), m); err != nil {
		t.Fatalf("attempt 3: got %v, want nil (dead-lettered)", err)
	}
	if n := len(rec.sent("dlq")); n != 1 {
		t.Fatalf("%d letters, want 1", n)
	}
	// Also with an in-process retry around it.
	rec2 := &recorder{}
	calls := 0
	h = messaging.Chain(func(context.Context, *messaging.Message) error { calls++; return errBoom },
		mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond))), mwtest.Must(deadletter.New(rec2, "dlq")))
	if err := h(context.Background(), &messaging.Message{Topic: "t", Attempt: 1}); err != nil {
		t.Fatalf("in-process: got %v, want nil", err)
	}
	if calls != 3 || len(rec2.sent("dlq")) != 1 || rec2.sent("dlq")[0].Header[deadletter.HeaderAttempts] != "3" {
		t.Fatalf("in-process: %d calls, %d letters, want 3 calls and 1 letter with 3 attempts", calls, len(rec2.sent("dlq")))
	}
}

// TestInsideRetryFailedPublishKeepsOriginal: with retry outside deadletter,
// a dead letter that cannot be published on the last attempt must still
// leave the message for redelivery; given up (permanent), the adapter would
// acknowledge it and it would be in neither topic.
func TestInsideRetryFailedPublishKeepsOriginal(t *testing.T) {
	for name, opts := range map[string][]retry.Option{
		"broker":     {retry.WithMaxAttempts(3)},
		"in-process": {retry.WithInProcess(), retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond)},
	} {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{fail: errors.New("broker down")}
			h := messaging.Chain(func(context.Context, *messaging.Message) error { return errBoom },
				mwtest.Must(retry.New(opts...)), mwtest.Must(deadletter.New(rec, "dlq", deadletter.WithRetryDelay(3*time.Second))))
			err := h(context.Background(), delivered()) // Attempt 3, the last
			if err == nil || messaging.IsPermanent(err) {
				t.Fatalf("got %v, want a non-permanent error so the original is not acknowledged", err)
			}
			if d, _ := messaging.RetryDelay(err); d != 3*time.Second {
				t.Errorf("retry delay %v, want the dead-letter layer's 3s", d)
			}
		})
	}
}

func TestQueueNeedsStream(t *testing.T) {
	type plain struct{ messaging.Client }
	if _, err := deadletter.NewQueue(plain{mwtest.Memory(t)}, "dlq"); !errors.Is(err, messaging.ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
}

func TestQueueListGetRedrive(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	q, err := deadletter.NewQueue(c, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	if es, err := q.List(ctx); err != nil || len(es) != 0 {
		t.Fatalf("empty queue: %d entries, %v", len(es), err)
	}
	h := mwtest.Must(deadletter.New(c, "dlq"))(func(context.Context, *messaging.Message) error { return messaging.Permanent(errBoom) })
	for i := range 3 {
		m := &messaging.Message{ID: "orig" + strconv.Itoa(i), Key: "k", Payload: []byte{byte(i)}, Topic: "orders", Attempt: 1,
			Header: messaging.Header{"n": strconv.Itoa(i)}}
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	es, err := q.List(ctx)
	if err != nil || len(es) != 3 {
		t.Fatalf("list: %d entries, %v; want 3", len(es), err)
	}
	for i, e := range es {
		if e.OriginalID != "orig"+strconv.Itoa(i) {
			t.Fatalf("entry %d is %s: not oldest first", i, e.OriginalID)
		}
	}
	e, err := q.Get(ctx, es[1].Message.ID)
	if err != nil || e.OriginalID != "orig1" {
		t.Fatalf("get by dead-letter ID: %+v, %v", e, err)
	}
	if _, err := q.Get(ctx, "nope"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	if _, err := q.Redrive(ctx, "orig1", "nope"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("redrive unknown: %v, want ErrNotFound", err)
	}

	col := integration.NewCollector()
	mwtest.Subscribe(t, ctx, c, "orders", col.Handler(), messaging.Group("g"))
	if n, err := q.Redrive(ctx, "orig1"); n != 1 || err != nil {
		t.Fatalf("redrive by original ID: %d, %v", n, err)
	}
	col.WaitDistinct(t, 1, 10*time.Second)
	got := col.Messages()[0]
	if got.Header["n"] != "1" || got.Key != "k" || got.Payload[0] != 1 {
		t.Fatalf("redriven message %+v is not the original", got)
	}
	for k := range got.Header {
		if strings.HasPrefix(k, deadletter.HeaderPrefix) {
			t.Fatalf("redriven message keeps dead-letter header %s", k)
		}
	}
	if es, _ := q.List(ctx); len(es) != 2 {
		t.Fatalf("after redriving one: %d pending, want 2", len(es))
	}
	if n, err := q.RedriveAll(ctx); n != 2 || err != nil {
		t.Fatalf("redrive all: %d, %v", n, err)
	}
	col.WaitDistinct(t, 3, 10*time.Second)
	if es, _ := q.List(ctx); len(es) != 0 {
		t.Fatalf("after redriving all: %d pending", len(es))
	}
	if n, _ := q.RedriveAll(ctx); n != 0 {
		t.Fatalf("second redrive all republished %d", n)
	}
}

// TestDeadLetterAndRedriveEndToEnd runs on every registered backend: a
// handler failing forever runs exactly MaxAttempts times, the message ends in
// the dead-letter topic with its metadata, and once redriven it succeeds.
func TestDeadLetterAndRedriveEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "orders")
		dlq := mwtest.Topic(t, c, "dlq")
		group := integration.UniqueName(t, "g")
		dlqGroup := integration.UniqueName(t, "dg")
		if err := messaging.Provision(ctx, c, dlq, dlqGroup); err != nil {
			t.Fatal(err)
		}

		var healthy atomic.Bool
		var calls atomic.Int32
		ok := integration.NewCollector()
		h := messaging.Chain(func(ctx context.Context, m *messaging.Message) error {
			if healthy.Load() {
				ok.Add(m)
				return nil
			}
			calls.Add(1)
			return errBoom
		}, mwtest.Must(deadletter.New(c, dlq)), mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(20*time.Millisecond, 20*time.Millisecond), retry.WithModeFor(c.Capabilities()))))
		mwtest.Subscribe(t, ctx, c, topic, h, messaging.Group(group))
		letters := integration.NewCollector()
		mwtest.Subscribe(t, ctx, c, dlq, func(_ context.Context, m *messaging.Message) error {
			if !deadletter.IsControl(m) {
				letters.Add(m)
			}
			return nil
		}, messaging.Group(dlqGroup))

		orig := integration.WithIDs(c, &messaging.Message{Key: "key-1", Payload: []byte("order 42"), Header: messaging.Header{"tenant": "acme"}})[0]
		mwtest.Publish(t, ctx, c, topic, orig)
		letters.WaitDistinct(t, 1, hn.Timeout)
		if n := calls.Load(); n != 3 {
			t.Fatalf("handler ran %d times before dead-lettering, want exactly 3", n)
		}
		letter := letters.Messages()[0]
		e, err := deadletter.Parse(letter)
		if err != nil {
			t.Fatal(err)
		}
		if e.Topic != topic || e.Group != group || e.Attempts != 3 || e.OriginalID != orig.ID || !strings.Contains(e.Reason, "boom") || e.Time.IsZero() {
			t.Fatalf("dead letter metadata %+v (headers %v)", e, letter.Header)
		}
		if letter.Key != "key-1" || string(letter.Payload) != "order 42" || letter.Header["tenant"] != "acme" {
			t.Fatalf("dead letter lost key, payload or headers: %+v", letter)
		}

		healthy.Store(true)
		q, err := deadletter.NewQueue(c, dlq)
		if err == nil {
			var n int
			n, err = q.Redrive(ctx, orig.ID)
			if err == nil && n != 1 {
				t.Fatalf("redrive: %d letters, want 1", n)
			}
		}
		switch {
		case errors.Is(err, messaging.ErrUnsupported):
			t.Logf("%s: no replay (%v): redriving by hand with RedriveMessage", hn.Name, err)
			mwtest.Publish(t, ctx, c, topic, deadletter.RedriveMessage(e))
		case err != nil:
			t.Fatalf("redrive: %v", err)
		}
		ok.WaitDistinct(t, 1, hn.Timeout)
		got := ok.Messages()[0]
		if string(got.Payload) != "order 42" || got.Key != "key-1" || got.Header["tenant"] != "acme" || got.Attempt != 1 {
			t.Fatalf("redriven message %+v", got)
		}
		for k := range got.Header {
			if strings.HasPrefix(k, deadletter.HeaderPrefix) {
				t.Fatalf("redriven message keeps %s", k)
			}
		}
		if n := calls.Load(); n != 3 {
			t.Fatalf("failing handler ran %d times in total, want exactly 3", n)
		}
	})
}

// TestQueueScanWritesNothing: Scan lists the pending letters (hiding
// redriven ones) without appending anything to the topic, unlike List.
func TestQueueScanWritesNothing(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	q, err := deadletter.NewQueue(c, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Scan(ctx, 0); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("Scan with quiet 0: %v, want ErrInvalidOption", err)
	}
	h := mwtest.Must(deadletter.New(c, "dlq"))(func(context.Context, *messaging.Message) error { return messaging.Permanent(errBoom) })
	for i := range 3 {
		if err := h(ctx, &messaging.Message{ID: "orig" + strconv.Itoa(i), Topic: "orders", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.Redrive(ctx, "orig1"); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	// first returns the first message of the topic's log from pos.
	first := func(pos messaging.Position) *messaging.Message {
		got := make(chan *messaging.Message, 1)
		sub, err := c.Read(ctx, "dlq", pos, func(_ context.Context, m *messaging.Message) error {
			select {
			case got <- m:
			default:
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		return <-got
	}
	// The log holds 3 letters, the marker Redrive's List appended and the
	// redrive mark (offsets 0 to 4).
	if m := first(messaging.AtOffset("4")); m.Header[deadletter.HeaderControl] != "redriven" {
		t.Fatalf("offset 4 is %v, want the redrive mark", m.Header)
	}
	entries, err := q.Scan(ctx, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.OriginalID)
	}
	if strings.Join(ids, ",") != "orig0,orig2" {
		t.Errorf("Scan: %v, want orig0,orig2", ids)
	}
	// The next message after the mark is ours: Scan appended nothing.
	if err := c.Publish(ctx, "dlq", &messaging.Message{ID: "sentinel"}); err != nil {
		t.Fatal(err)
	}
	if m := first(messaging.AfterOffset("4")); m.ID != "sentinel" {
		t.Errorf("Scan wrote to the topic: after the redrive mark comes %s %v", m.ID, m.Header)
	}
}

// ctxRecorder is a Publisher that fails with its context's error, and
// records the deadline it was given.
type ctxRecorder struct {
	recorder
	deadline time.Time
}

func (r *ctxRecorder) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	r.mu.Lock()
	r.deadline, _ = ctx.Deadline()
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.recorder.Publish(ctx, topic, msgs...)
}

// TestPublishOutlivesHandlerContext: the dead letter of a message whose
// handler failed for good is published even though the handler's context
// was cancelled meanwhile (the subscription is stopping), and the publish
// is bounded by WithPublishTimeout.
func TestPublishOutlivesHandlerContext(t *testing.T) {
	rec := &ctxRecorder{}
	h := mwtest.Must(deadletter.New(rec, "dlq", deadletter.WithPublishTimeout(time.Hour)))(func(context.Context, *messaging.Message) error {
		return messaging.Permanent(errBoom)
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := h(ctx, delivered()); err != nil {
		t.Fatalf("got %v, want nil (dead-lettered although the handler context ended)", err)
	}
	if n := len(rec.sent("dlq")); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	if d := rec.deadline.Sub(start); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("publish deadline %v after the call, want WithPublishTimeout's 1h", d)
	}
}

// deadLetters dead-letters n messages of topic "orders" into "dlq" on c.
func deadLetters(t *testing.T, ctx context.Context, c messaging.Publisher, n int) {
	t.Helper()
	h := mwtest.Must(deadletter.New(c, "dlq"))(func(context.Context, *messaging.Message) error { return messaging.Permanent(errBoom) })
	for i := range n {
		if err := h(ctx, &messaging.Message{ID: "orig" + strconv.Itoa(i), Topic: "orders", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedriveNamedTwiceIsRedrivenOnce: a letter named twice, by its
// dead-letter ID and by its original ID, is redriven once.
func TestRedriveNamedTwiceIsRedrivenOnce(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	q := mwtest.Must(deadletter.NewQueue(c, "dlq"))
	deadLetters(t, ctx, c, 2)
	es, err := q.List(ctx)
	if err != nil || len(es) != 2 {
		t.Fatalf("list: %d entries, %v; want 2", len(es), err)
	}
	if n, err := q.Redrive(ctx, es[0].Message.ID, es[0].OriginalID); n != 1 || err != nil {
		t.Fatalf("redrive of one letter named twice: %d, %v; want 1, nil", n, err)
	}
	if es, err := q.List(ctx); err != nil || len(es) != 1 || es[0].OriginalID != "orig1" {
		t.Fatalf("after the redrive: %d pending (%v), want orig1 alone", len(es), err)
	}
}

// failingTopic is a client whose publishes to one topic fail.
type failingTopic struct {
	*memory.Client
	topic string
}

func (c failingTopic) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if topic == c.topic {
		return errors.New("broker down")
	}
	return c.Client.Publish(ctx, topic, msgs...)
}

// TestFailedRedriveKeepsLetter: a letter whose republishing failed is not
// marked redriven: it stays pending, for the next redrive (a duplicate,
// never a loss).
func TestFailedRedriveKeepsLetter(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	deadLetters(t, ctx, c, 1)
	q := mwtest.Must(deadletter.NewQueue(failingTopic{c, "orders"}, "dlq"))
	if n, err := q.RedriveAll(ctx); n != 0 || err == nil {
		t.Fatalf("redrive to a failing topic: %d, %v; want 0 and an error", n, err)
	}
	if es, err := q.List(ctx); err != nil || len(es) != 1 {
		t.Fatalf("after the failed redrive: %d pending (%v), want the letter still pending", len(es), err)
	}
}
