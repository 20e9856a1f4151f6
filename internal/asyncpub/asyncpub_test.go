package asyncpub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

func TestTrackerWindow(t *testing.T) {
	tr := NewTracker(make(chan struct{}, 2))
	ctx := context.Background()
	for range 2 {
		if err := tr.Begin(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The window is full: Begin waits, and gives up when its ctx ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := tr.Begin(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin on a full window: %v, want DeadlineExceeded", err)
	}
	// A waiting Begin proceeds when a message ends.
	began := make(chan error)
	go func() { began <- tr.Begin(ctx) }()
	select {
	case err := <-began:
		t.Fatalf("Begin returned %v on a full window", err)
	default:
	}
	var got []error
	tr.End(func(_ *messaging.Message, err error) { got = append(got, err) }, nil, nil)
	if err := <-began; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != nil {
		t.Fatalf("End called done with %v", got)
	}
	// Flush waits for the two pending messages.
	flushed := make(chan error)
	go func() { flushed <- tr.Flush(ctx) }()
	tr.End(nil, nil, nil)
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v with a message pending", err)
	case <-time.After(10 * time.Millisecond):
	}
	tr.End(nil, nil, nil)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	// Close makes a Begin waiting for the window fail with ErrClosed.
	for range 2 {
		if err := tr.Begin(ctx); err != nil {
			t.Fatal(err)
		}
	}
	go func() { began <- tr.Begin(ctx) }()
	tr.Close()
	if err := <-began; !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("Begin waiting at Close: %v, want ErrClosed", err)
	}
	if err := tr.Begin(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("Begin after Close: %v, want ErrClosed", err)
	}
}

// recorder is a SendFunc that records its batches; fail decides a
// message's error, whole fails a batch as a whole.
type recorder struct {
	mu      sync.Mutex
	batches [][]*messaging.Message
	entered chan struct{} // when set, each send signals it first
	release chan struct{} // when set, each send waits for it
	fail    func(m *messaging.Message) error
	whole   error
}

func (r *recorder) send(_ context.Context, topic string, msgs ...*messaging.Message) error {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.release != nil {
		<-r.release
	}
	r.mu.Lock()
	r.batches = append(r.batches, msgs)
	r.mu.Unlock()
	if r.whole != nil {
		return r.whole
	}
	pe := &messaging.PublishError{Errs: make([]error, len(msgs))}
	failed := false
	for i, m := range msgs {
		if m.Topic != topic {
			pe.Errs[i] = fmt.Errorf("sent to %s, meant for %s", topic, m.Topic)
			failed = true
		} else if r.fail != nil {
			pe.Errs[i] = r.fail(m)
			failed = failed || pe.Errs[i] != nil
		}
	}
	if failed {
		return pe
	}
	return nil
}

func noCheck(string, *messaging.Message) error { return nil }

type results struct {
	mu   sync.Mutex
	errs map[*messaging.Message][]error
}

func (r *results) done(m *messaging.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[*messaging.Message][]error{}
	}
	r.errs[m] = append(r.errs[m], err)
}

func TestBatcherResultsAndOrder(t *testing.T) {
	rec := &recorder{fail: func(m *messaging.Message) error {
		if string(m.Payload) == "bad" {
			return errors.New("refused")
		}
		return nil
	}}
	b := NewBatcher(3, 7, func(_ string, m *messaging.Message) error {
		if m.Header["invalid"] != "" {
			return messaging.ErrInvalidHeader
		}
		return nil
	}, rec.send)
	var res results
	var msgs []*messaging.Message
	ctx := context.Background()
	for i := range 500 {
		topic := []string{"a", "b"}[i%2]
		m := &messaging.Message{Key: fmt.Sprintf("k%d", i%5), Topic: topic, Payload: []byte(fmt.Sprint(i))}
		switch i {
		case 100:
			m.Payload = []byte("bad")
		case 200:
			m.Header = messaging.Header{"invalid": "x"}
		}
		msgs = append(msgs, m)
		b.PublishAsync(ctx, topic, m, res.done)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		errs := res.errs[m]
		if len(errs) != 1 {
			t.Fatalf("message %d: %d results", i, len(errs))
		}
		switch i {
		case 100:
			if errs[0] == nil || errs[0].Error() != "refused" {
				t.Errorf("message 100: %v, want its own error", errs[0])
			}
		case 200:
			if !errors.Is(errs[0], messaging.ErrInvalidHeader) {
				t.Errorf("message 200: %v, want ErrInvalidHeader", errs[0])
			}
		default:
			if errs[0] != nil {
				t.Errorf("message %d: %v", i, errs[0])
			}
		}
	}
	// Batches hold at most 7 messages of one topic, and each key's
	// messages of a topic were sent in order.
	last := map[string]int{}
	sent := 0
	for _, batch := range rec.batches {
		if len(batch) > 7 {
			t.Fatalf("batch of %d messages, more than 7", len(batch))
		}
		for _, m := range batch {
			var seq int
			fmt.Sscan(string(m.Payload), &seq)
			if string(m.Payload) == "bad" {
				seq = 100
			}
			k := m.Topic + "/" + m.Key
			if prev, ok := last[k]; ok && seq <= prev {
				t.Fatalf("key %s: %d sent after %d", k, seq, prev)
			}
			last[k] = seq
			sent++
		}
	}
	if sent != 499 {
		t.Fatalf("%d messages sent, want 499 (all but the invalid one)", sent)
	}
}

func TestBatcherWholeFailure(t *testing.T) {
	rec := &recorder{whole: messaging.ErrUnavailable}
	b := NewBatcher(1, 100, noCheck, rec.send)
	var res results
	for range 10 {
		b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for m, errs := range res.errs {
		if len(errs) != 1 || !errors.Is(errs[0], messaging.ErrUnavailable) {
			t.Fatalf("%p: %v, want one ErrUnavailable", m, errs)
		}
	}
	if len(res.errs) != 10 {
		t.Fatalf("%d messages with results, want 10", len(res.errs))
	}
}

// TestBatcherCloseAndCancel: at Close, the batch being sent gets the send's
// results and the queued messages fail with ErrClosed; messages whose ctx
// ended while queued fail with its error without being sent.
func TestBatcherCloseAndCancel(t *testing.T) {
	rec := &recorder{entered: make(chan struct{}, 1), release: make(chan struct{})}
	b := NewBatcher(1, 1, noCheck, rec.send)
	var res results
	ctx, cancel := context.WithCancel(context.Background())
	first := &messaging.Message{Topic: "t"}
	b.PublishAsync(context.Background(), "t", first, res.done)
	<-rec.entered // first is being sent
	cancelled := &messaging.Message{Topic: "t"}
	b.PublishAsync(ctx, "t", cancelled, res.done)
	queued := &messaging.Message{Topic: "t"}
	b.PublishAsync(context.Background(), "t", queued, res.done)
	cancel()
	b.t.Close() // Close's first step, made here to know it is done
	late := &messaging.Message{Topic: "t"}
	b.PublishAsync(context.Background(), "t", late, res.done)
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	close(rec.release)
	<-closed
	want := map[*messaging.Message]error{first: nil, cancelled: context.Canceled, queued: messaging.ErrClosed, late: messaging.ErrClosed}
	for m, w := range want {
		errs := res.errs[m]
		if len(errs) != 1 || (w == nil) != (errs[0] == nil) || (w != nil && !errors.Is(errs[0], w)) {
			t.Errorf("results %v, want one %v", errs, w)
		}
	}
	if len(rec.batches) != 1 {
		t.Errorf("%d batches sent, want 1", len(rec.batches))
	}
}

// TestBatcherStampEnqueue: a Batcher made with StampEnqueue tells send when
// each message of a batch was queued, not when the batch left: a message
// queued while the batch before it was being sent keeps its own time.
func TestBatcherStampEnqueue(t *testing.T) {
	var mu sync.Mutex
	var got [][]time.Time
	entered, release := make(chan struct{}, 1), make(chan struct{})
	b := NewBatcher(1, 100, noCheck, func(ctx context.Context, _ string, msgs ...*messaging.Message) error {
		mu.Lock()
		got = append(got, Enqueued(ctx))
		first := len(got) == 1
		mu.Unlock()
		if first {
			entered <- struct{}{}
			<-release
		}
		if at := Enqueued(ctx); len(at) != len(msgs) {
			return fmt.Errorf("%d enqueue times for %d messages", len(at), len(msgs))
		}
		return nil
	}).StampEnqueue()
	var res results
	before := time.Now()
	b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	<-entered // the first batch is being sent
	middle := time.Now()
	for range 3 {
		b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	}
	queued := time.Now()
	close(release)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for m, errs := range res.errs {
		if len(errs) != 1 || errs[0] != nil {
			t.Fatalf("%p: %v, want one success", m, errs)
		}
	}
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 3 {
		t.Fatalf("enqueue times %v, want one batch of 1 then one of 3", got)
	}
	if at := got[0][0]; at.Before(before) || at.After(middle) {
		t.Errorf("first message queued at %v, want between %v and %v", at, before, middle)
	}
	for i, at := range got[1] {
		if at.Before(middle) || at.After(queued) || (i > 0 && at.Before(got[1][i-1])) {
			t.Errorf("queued message %d at %v, want between %v and %v, not before the one queued before it", i, at, middle, queued)
		}
	}
	if at := Enqueued(context.Background()); at != nil {
		t.Errorf("Enqueued of another context: %v, want nil", at)
	}
}

// TestTrackerEndPanickingCallback: a callback that panics on a goroutine
// that recovers (End on the calling goroutine, as the NATS adapter's
// PublishAsync does for a message that fails once admitted) still ends its
// message: the slot is freed and Flush does not wait for it forever.
func TestTrackerEndPanickingCallback(t *testing.T) {
	tr := NewTracker(make(chan struct{}, 1))
	ctx := context.Background()
	if err := tr.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the callback's panic did not reach the caller")
			}
		}()
		tr.End(func(*messaging.Message, error) { panic("callback") }, nil, nil)
	}()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := tr.Flush(short); err != nil {
		t.Fatalf("Flush after the panicking callback's message ended: %v", err)
	}
	if err := tr.Begin(short); err != nil {
		t.Fatalf("Begin on a window whose one message ended: %v", err)
	}
}

// TestLazyCloseBeforeFirstUse: PublishAsync on a client closed before it
// ever published asynchronously fails at once with ErrClosed, as after a
// Close that found a Batcher: the message is not sent.
func TestLazyCloseBeforeFirstUse(t *testing.T) {
	var l Lazy
	rec := &recorder{}
	made := func() *Batcher { return NewBatcher(1, 10, noCheck, rec.send) }
	l.Close()
	var res results
	m := &messaging.Message{Topic: "t"}
	l.Get(made).PublishAsync(context.Background(), "t", m, res.done)
	res.mu.Lock()
	errs := res.errs[m]
	res.mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], messaging.ErrClosed) {
		t.Errorf("PublishAsync after Close: results %v before it returned, want one wrapping ErrClosed", errs)
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.batches) != 0 {
		t.Errorf("%d batches sent after Close, want none", len(rec.batches))
	}
	l.Close() // idempotent
}

// TestBatcherTopicRoundsRecheck: a batch holding several topics is sent one
// topic after the other; a message of a later topic whose ctx ends, or
// whose Batcher closes, while an earlier topic's messages are being sent is
// still queued in the client, so it fails with ctx's error (or ErrClosed)
// without being sent.
func TestBatcherTopicRoundsRecheck(t *testing.T) {
	for _, closing := range []bool{false, true} {
		rec := &recorder{entered: make(chan struct{}, 1), release: make(chan struct{})}
		b := NewBatcher(1, 100, noCheck, rec.send)
		var res results
		bg := context.Background()
		first := &messaging.Message{Topic: "a"}
		b.PublishAsync(bg, "a", first, res.done)
		<-rec.entered // first is being sent: the next two make one batch
		second := &messaging.Message{Topic: "a"}
		b.PublishAsync(bg, "a", second, res.done)
		ctx, cancel := context.WithCancel(bg)
		other := &messaging.Message{Topic: "b"}
		b.PublishAsync(ctx, "b", other, res.done)
		rec.release <- struct{}{}
		<-rec.entered // second, topic a's round of the batch, is being sent
		want := error(context.Canceled)
		closed := make(chan struct{})
		if closing {
			want = messaging.ErrClosed
			b.t.Close() // Close's first step, made here to know it is done
			go func() { b.Close(); close(closed) }()
		} else {
			cancel()
			close(closed)
		}
		close(rec.release)
		<-closed
		if err := b.Flush(bg); err != nil {
			t.Fatal(err)
		}
		cancel()
		if errs := res.errs[other]; len(errs) != 1 || !errors.Is(errs[0], want) {
			t.Errorf("closing %v: the other topic's message: results %v, want one wrapping %v", closing, errs, want)
		}
		for _, m := range []*messaging.Message{first, second} {
			if errs := res.errs[m]; len(errs) != 1 || errs[0] != nil {
				t.Errorf("closing %v: results %v, want one nil", closing, errs)
			}
		}
		if len(rec.batches) != 2 {
			t.Errorf("closing %v: %d batches sent, want 2 (topic b's not sent)", closing, len(rec.batches))
		}
	}
}

// TestBatcherCallbackPublishesAndNilDone: no lock is held while a callback
// runs, so a callback may give the next message to PublishAsync (the
// window has room), and Flush waits for the messages given so; a nil
// callback ignores the results, failed or not.
func TestBatcherCallbackPublishesAndNilDone(t *testing.T) {
	rec := &recorder{}
	b := NewBatcher(2, 3, func(_ string, m *messaging.Message) error {
		if m.Header["invalid"] != "" {
			return messaging.ErrInvalidHeader
		}
		return nil
	}, rec.send)
	ctx := context.Background()
	const n = 50
	var mu sync.Mutex
	var got []error
	var done messaging.PublishCallback
	done = func(m *messaging.Message, err error) {
		mu.Lock()
		got = append(got, err)
		more := len(got) < n
		mu.Unlock()
		if more {
			b.PublishAsync(ctx, "t", &messaging.Message{Topic: "t", Key: m.Key}, done)
		}
	}
	b.PublishAsync(ctx, "t", &messaging.Message{Topic: "t", Key: "k"}, done)
	b.PublishAsync(ctx, "t", &messaging.Message{Topic: "t"}, nil)
	b.PublishAsync(ctx, "t", &messaging.Message{Topic: "t", Header: messaging.Header{"invalid": "x"}}, nil)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	for i, err := range got {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	b.Close()
}

// TestBatcherKeylessLaneAfterWrap: the counter that spreads keyless
// messages over the lanes passes 2^31 after as many messages; where int
// has 32 bits (386, arm) its conversion to int was negative and the lane
// index out of range, a panic in the caller's PublishAsync. GOARCH=386
// runs it there (the counter wraps the same way on every platform).
func TestBatcherKeylessLaneAfterWrap(t *testing.T) {
	rec := &recorder{}
	b := NewBatcher(3, 100, noCheck, rec.send)
	defer b.Close()
	b.next.Store(math.MaxInt32)
	var res results
	for range 4 { // counter values 2^31 to 2^31+3
		b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(res.errs) != 4 {
		t.Fatalf("%d messages with results, want 4", len(res.errs))
	}
}

// TestBatcherUnwanted: the send function of a batch learns, through
// Unwanted, which of its messages are no longer to be sent once it can
// write: one whose ctx ended meanwhile (ctx's error), all once the
// Batcher closes (ErrClosed); nil for the others.
func TestBatcherUnwanted(t *testing.T) {
	if Unwanted(context.Background()) != nil || Closing(context.Background()) != nil {
		t.Fatal("Unwanted or Closing outside a batch is not nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan func(int) error)
	closingOf := make(chan (<-chan struct{}), 2)
	proceed := make(chan struct{})
	b := NewBatcher(1, 10, noCheck, func(sctx context.Context, _ string, msgs ...*messaging.Message) error {
		closingOf <- Closing(sctx)
		entered <- Unwanted(sctx)
		<-proceed
		return nil
	})
	var r results
	b.PublishAsync(ctx, "t", &messaging.Message{Key: "k"}, r.done)
	unwanted := <-entered
	if closing := <-closingOf; closing == nil {
		t.Fatal("Closing in a batch's send is nil")
	} else {
		select {
		case <-closing:
			t.Fatal("Closing's channel is closed before Close")
		default:
		}
	}
	if unwanted == nil {
		t.Fatal("Unwanted in a batch's send is nil")
	}
	if err := unwanted(0); err != nil {
		t.Fatalf("a message whose ctx lives: %v", err)
	}
	cancel()
	if err := unwanted(0); !errors.Is(err, context.Canceled) {
		t.Fatalf("a message whose ctx ended: %v, want context.Canceled", err)
	}
	close(proceed)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Closing: a batch in its send says ErrClosed for every message.
	proceed = make(chan struct{})
	b.PublishAsync(context.Background(), "t", &messaging.Message{Key: "k"}, r.done)
	unwanted = <-entered
	closing := <-closingOf
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	for deadline := time.Now().Add(5 * time.Second); !b.t.Closed(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("Close did not close the tracker")
		}
	}
	if err := unwanted(0); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("a message of a closing Batcher: %v, want ErrClosed", err)
	}
	select {
	case <-closing:
	default:
		t.Fatal("Closing's channel is open once Close has begun")
	}
	close(proceed)
	<-closed
}
