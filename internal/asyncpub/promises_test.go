package asyncpub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/msgkit/messaging"
)

// TestTrackerBeginAfterCloseWithRoom: once closed, Begin refuses a message
// even while the window has room.
func TestTrackerBeginAfterCloseWithRoom(t *testing.T) {
	tr := NewTracker(make(chan struct{}, 4))
	tr.Close()
	if err := tr.Begin(context.Background()); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("Begin after Close with room in the window: %v, want ErrClosed", err)
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after a refused Begin: %v", err)
	}
}

// TestTrackerFlushWaitsForCallbacks: Flush returns only once the callback
// of every earlier message has returned, whether the message ended (End)
// or failed at once (Fail).
func TestTrackerFlushWaitsForCallbacks(t *testing.T) {
	for _, name := range []string{"End", "Fail"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := NewTracker(make(chan struct{}, 1))
				if name == "End" {
					if err := tr.Begin(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				entered, release := make(chan struct{}), make(chan struct{})
				done := func(*messaging.Message, error) {
					close(entered)
					<-release
				}
				go func() {
					if name == "End" {
						tr.End(done, nil, nil)
					} else {
						tr.Fail(done, nil, errors.New("invalid"))
					}
				}()
				<-entered // the callback runs, holding on
				flushed := make(chan error, 1)
				go func() { flushed <- tr.Flush(context.Background()) }()
				synctest.Wait()
				select {
				case err := <-flushed:
					close(release)
					t.Fatalf("Flush returned (%v) while the message's callback runs", err)
				default:
				}
				close(release)
				if err := <-flushed; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestTrackerFlushHonoursContext: Flush with a message pending returns
// ctx's error once ctx ends.
func TestTrackerFlushHonoursContext(t *testing.T) {
	tr := NewTracker(nil)
	if err := tr.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a message pending and ctx cancelled: %v, want context.Canceled", err)
	}
	tr.End(nil, nil, nil)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckFailsAtOnce: Check refuses a nil message (ErrInvalidOption) and
// a message whose ctx has ended (ctx's error) without admitting it: the
// result reaches done before Check returns, exactly once, and no slot of
// the window is taken.
func TestCheckFailsAtOnce(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		m    *messaging.Message
		want error
	}{
		{"nil message", context.Background(), nil, messaging.ErrInvalidOption},
		{"ctx done", cancelled, &messaging.Message{Topic: "t"}, context.Canceled},
	} {
		tr := NewTracker(make(chan struct{}, 1))
		var got []error
		ok := Check(tc.ctx, tr, "t", tc.m, noCheck, func(_ *messaging.Message, err error) { got = append(got, err) })
		if ok || len(got) != 1 || !errors.Is(got[0], tc.want) {
			t.Errorf("%s: Check = %v, results %v; want false and one wrapping %v", tc.name, ok, got, tc.want)
		}
		// The window's one slot is free: Begin does not wait.
		short, stop := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tr.Begin(short); err != nil {
			t.Errorf("%s: Begin after the refused message: %v", tc.name, err)
		}
		stop()
	}
}

// TestBatcherPublishErrorOfAnotherLength: a *PublishError whose entries do
// not match the batch's messages one to one applies to every message as a
// whole (each gets the error itself), rather than handing out its entries.
func TestBatcherPublishErrorOfAnotherLength(t *testing.T) {
	b := NewBatcher(1, 10, noCheck, func(_ context.Context, _ string, msgs ...*messaging.Message) error {
		return &messaging.PublishError{Errs: make([]error, len(msgs)+1)}
	})
	defer b.Close()
	var res results
	for range 3 {
		b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(res.errs) != 3 {
		t.Fatalf("%d messages with results, want 3", len(res.errs))
	}
	for m, errs := range res.errs {
		var pe *messaging.PublishError
		if len(errs) != 1 || !errors.As(errs[0], &pe) {
			t.Errorf("%p: results %v, want one: the misshapen PublishError as a whole", m, errs)
		}
	}
}

// TestBatcherMaxBatchAtLeastOne: a Batcher made with a batch bound below 1
// sends batches of one message (as the driver package documents: at least
// 1), rather than none.
func TestBatcherMaxBatchAtLeastOne(t *testing.T) {
	rec := &recorder{}
	b := NewBatcher(1, 0, noCheck, rec.send)
	var res results
	for range 3 {
		b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("Flush of a Batcher made with maxBatch 0: %v", err)
	}
	for m, errs := range res.errs {
		if len(errs) != 1 || errs[0] != nil {
			t.Errorf("%p: results %v, want one success", m, errs)
		}
	}
	if len(res.errs) != 3 || len(rec.batches) != 3 {
		t.Errorf("%d messages with results in %d batches, want 3 in 3", len(res.errs), len(rec.batches))
	}
	b.Close()
}

// TestLazyFlushAndCloseAfterUse: a Lazy whose Batcher was made flushes it
// (Flush waits for its messages) and closes it (PublishAsync fails at once
// with ErrClosed, nothing more is sent).
func TestLazyFlushAndCloseAfterUse(t *testing.T) {
	var l Lazy
	rec := &recorder{entered: make(chan struct{}, 1), release: make(chan struct{})}
	made := func() *Batcher { return NewBatcher(1, 10, noCheck, rec.send) }
	var res results
	first := &messaging.Message{Topic: "t"}
	l.Get(made).PublishAsync(context.Background(), "t", first, res.done)
	<-rec.entered // first is being sent
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Flush(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lazy.Flush with a message being sent and ctx cancelled: %v, want context.Canceled", err)
	}
	close(rec.release)
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if errs := res.errs[first]; len(errs) != 1 || errs[0] != nil {
		t.Fatalf("first message: results %v, want one success", errs)
	}
	l.Close()
	late := &messaging.Message{Topic: "t"}
	l.Get(made).PublishAsync(context.Background(), "t", late, res.done)
	res.mu.Lock()
	errs := res.errs[late]
	res.mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], messaging.ErrClosed) {
		t.Errorf("PublishAsync after Lazy.Close: results %v before it returned, want one wrapping ErrClosed", errs)
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.batches) != 1 {
		t.Errorf("%d batches sent, want 1 (none after Close)", len(rec.batches))
	}
}

// TestBatcherDefaultWindow: a Batcher keeps at most DefaultWindow messages
// pending: with that many waiting for the broker, PublishAsync of one more
// blocks until its ctx ends and reports ctx's error before it returns.
func TestBatcherDefaultWindow(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	b := NewBatcher(1, DefaultWindow, noCheck, func(context.Context, string, ...*messaging.Message) error {
		<-release
		return nil
	})
	defer b.Close()
	defer once.Do(func() { close(release) })
	var res results
	for range DefaultWindow {
		b.PublishAsync(context.Background(), "t", &messaging.Message{Topic: "t"}, res.done)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	extra := &messaging.Message{Topic: "t"}
	b.PublishAsync(ctx, "t", extra, res.done)
	res.mu.Lock()
	errs := res.errs[extra]
	res.mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Fatalf("message beyond a full window of %d: results %v when PublishAsync returned, want one wrapping DeadlineExceeded", DefaultWindow, errs)
	}
	once.Do(func() { close(release) })
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(res.errs) != DefaultWindow+1 {
		t.Fatalf("%d messages with results, want %d", len(res.errs), DefaultWindow+1)
	}
}

// TestTrackerCloseWakesWaitingBegin: a Begin already waiting for room when
// Close is called fails with ErrClosed at once, without waiting for a slot.
func TestTrackerCloseWakesWaitingBegin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTracker(make(chan struct{}, 1))
		if err := tr.Begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		began := make(chan error, 1)
		go func() { began <- tr.Begin(context.Background()) }()
		synctest.Wait() // the second Begin waits for room
		tr.Close()
		synctest.Wait()
		select {
		case err := <-began:
			if !errors.Is(err, messaging.ErrClosed) {
				t.Fatalf("Begin waiting at Close: %v, want ErrClosed", err)
			}
		default:
			tr.End(nil, nil, nil) // let the goroutine finish
			<-began
			t.Fatal("Begin waiting for room still waits after Close")
		}
		tr.End(nil, nil, nil)
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatcherUnwantedOfMixedBatch: in a batch holding several topics,
// Unwanted's index is that of the message in the send's msgs (the one
// topic's messages), not in the whole batch.
func TestBatcherUnwantedOfMixedBatch(t *testing.T) {
	bg := context.Background()
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	var got []error // Unwanted(i) for topic a's second batch, after cancel
	b := NewBatcher(1, 10, noCheck, func(sctx context.Context, topic string, msgs ...*messaging.Message) error {
		if len(msgs) == 1 && string(msgs[0].Payload) == "first" {
			entered <- struct{}{}
			<-release
			return nil
		}
		if topic == "a" {
			cancel() // the second message of topic a is no longer wanted
			unwanted := Unwanted(sctx)
			mu.Lock()
			for i := range msgs {
				got = append(got, unwanted(i))
			}
			mu.Unlock()
		}
		return nil
	})
	defer b.Close()
	var res results
	b.PublishAsync(bg, "a", &messaging.Message{Topic: "a", Payload: []byte("first")}, res.done)
	<-entered // first is being sent: the next three make one batch
	b.PublishAsync(bg, "a", &messaging.Message{Topic: "a"}, res.done)
	b.PublishAsync(bg, "b", &messaging.Message{Topic: "b"}, res.done)
	b.PublishAsync(ctx, "a", &messaging.Message{Topic: "a"}, res.done)
	close(release)
	if err := b.Flush(bg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != nil || !errors.Is(got[1], context.Canceled) {
		t.Fatalf("Unwanted for topic a's messages of a mixed batch: %v, want [nil, context.Canceled]", got)
	}
}
