package engine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
)

// fake is a driver whose broker is a channel of messages; it records what
// the engine asks of it.
type fake struct {
	caps    messaging.Capabilities
	in      chan *messaging.Message
	failN   int // Receive fails with a transient error this many times first
	slowAck chan struct{}

	mu       sync.Mutex
	settled  []driver.Settlement
	extended int
	fails    int
	onSettle chan driver.Settlement
}

func (f *fake) Capabilities() messaging.Capabilities { return f.caps }

func (f *fake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *fake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	f.mu.Lock()
	if f.fails < f.failN {
		f.fails++
		f.mu.Unlock()
		return nil, driver.Transient(errors.New("connection lost"))
	}
	f.mu.Unlock()
	select {
	case m := <-f.in:
		d := driver.Delivery{Msg: m, Token: m.ID}
		if reason := m.Header["undecodable"]; reason != "" {
			d.Err = errors.New(reason) // what a codec reports for a message it cannot hand over
		}
		return []driver.Delivery{d}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fake) Settle(_ context.Context, batch []driver.Settlement) error {
	if f.slowAck != nil {
		<-f.slowAck
	}
	f.mu.Lock()
	f.settled = append(f.settled, batch...)
	f.mu.Unlock()
	for _, st := range batch {
		f.onSettle <- st
	}
	return nil
}

func (f *fake) Extend(_ context.Context, ds []driver.Delivery) error {
	f.mu.Lock()
	f.extended += len(ds)
	f.mu.Unlock()
	return nil
}

func (f *fake) Close(context.Context) error { return nil }

func newFake(caps messaging.Capabilities) (*fake, *engine.Consumer) {
	f := &fake{caps: caps, in: make(chan *messaging.Message, 16), onSettle: make(chan driver.Settlement, 64)}
	return f, engine.New(f, engine.Options{Name: "fake", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func (f *fake) next(t *testing.T) driver.Settlement {
	t.Helper()
	select {
	case st := <-f.onSettle:
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("nothing settled within 10s")
		return driver.Settlement{}
	}
}

// TestLocalRedelivery: without BrokerAttempts the engine redelivers a
// nacked message itself, after its RetryAfter delay, with Attempt+1, and
// settles it only once it succeeded.
func TestLocalRedelivery(t *testing.T) {
	f, c := newFake(messaging.Capabilities{})
	defer c.Close()
	var mu sync.Mutex
	var attempts []int
	var failedAt time.Time
	const delay = 200 * time.Millisecond
	sub, err := c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, m.Attempt)
		if m.Attempt == 1 {
			failedAt = time.Now()
			return messaging.RetryAfter(errors.New("later"), delay)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	st := f.next(t)
	mu.Lock()
	waited := time.Since(failedAt)
	got := append([]int(nil), attempts...)
	mu.Unlock()
	if st.Outcome != driver.Ack || len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("settled %v after attempts %v; want one ack after attempts [1 2]", st.Outcome, got)
	}
	if waited < delay {
		t.Errorf("redelivered %v after RetryAfter(%v)", waited, delay)
	}
	_ = sub.Close()
}

// TestHeldNackAtStop: a delayed nack the engine holds when the
// subscription closes is nacked at once, with the delay it had left, for
// the driver to keep (see driver.Nack); it used to go with no delay.
func TestHeldNackAtStop(t *testing.T) {
	f, c := newFake(messaging.Capabilities{BrokerAttempts: true})
	defer c.Close()
	const delay = time.Minute
	failed := make(chan time.Time, 1)
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error {
		failed <- time.Now()
		return messaging.RetryAfter(errors.New("later"), delay)
	})
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	at := <-failed
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	left := delay - time.Since(at)
	st := f.next(t)
	if st.Outcome != driver.Nack || st.Delay < left || st.Delay > delay {
		t.Fatalf("settled %v delay %v at Close, want a nack with the %v left of the delay", st.Outcome, st.Delay, left)
	}
}

// TestHeldNack: without NativeDelay a delayed nack is held by the engine
// (and extended) and settled as a zero-delay Nack once due.
func TestHeldNack(t *testing.T) {
	f, c := newFake(messaging.Capabilities{BrokerAttempts: true})
	defer c.Close()
	const delay = 300 * time.Millisecond
	start := time.Now()
	_, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error {
		return messaging.RetryAfter(errors.New("later"), delay)
	}, messaging.AckDeadline(60*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	st := f.next(t)
	if st.Outcome != driver.Nack || st.Delay != 0 {
		t.Fatalf("settled %v delay %v, want a zero-delay nack", st.Outcome, st.Delay)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("nacked after %v, before the %v delay", took, delay)
	}
	f.mu.Lock()
	ext := f.extended
	f.mu.Unlock()
	if ext == 0 {
		t.Error("the held message's deadline was never extended (AckDeadline 60ms, held 300ms)")
	}
}

// TestTransientFetchErrorsRetried: transient Receive errors are retried
// with backoff; the subscription keeps running and delivers.
func TestTransientFetchErrorsRetried(t *testing.T) {
	f, c := newFake(messaging.Capabilities{BrokerAttempts: true, NativeDelay: true})
	f.failN = 3
	defer c.Close()
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	if st := f.next(t); st.Outcome != driver.Ack {
		t.Fatalf("settled %v, want ack", st.Outcome)
	}
	if sub.Err() != nil {
		t.Fatalf("Err %v", sub.Err())
	}
}

// TestSlowSettleDoesNotBlockHandlers: while Settle is stuck, handlers keep
// running (settlement is off the workers' path).
func TestSlowSettleDoesNotBlockHandlers(t *testing.T) {
	f, c := newFake(messaging.Capabilities{BrokerAttempts: true, NativeDelay: true})
	f.slowAck = make(chan struct{})
	handled := make(chan string, 8)
	_, err := c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
		handled <- m.ID
		return nil
	}, messaging.Prefetch(8))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		f.in <- &messaging.Message{ID: id, Attempt: 1}
	}
	for range 3 {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("a handler waited for a stuck Settle")
		}
	}
	close(f.slowAck)
	for range 3 {
		f.next(t)
	}
	_ = c.Close()
}

// TestTopicDeletedEnds: a Receive error wrapping ErrTopicDeleted ends the
// subscription with it.
func TestTopicDeletedEnds(t *testing.T) {
	f, c := newFake(messaging.Capabilities{})
	defer c.Close()
	f.failN = 0
	d := &deleted{f}
	c2 := engine.New(d, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	sub, err := c2.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("still running")
	}
	if !errors.Is(sub.Err(), messaging.ErrTopicDeleted) {
		t.Fatalf("Err %v, want ErrTopicDeleted", sub.Err())
	}
}

type deleted struct{ *fake }

func (d *deleted) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return d, nil
}

func (d *deleted) Receive(context.Context, int) ([]driver.Delivery, error) {
	return nil, messaging.ErrTopicDeleted
}

// TestUndecodableDeliveryGivenUp: a delivery the adapter marks with Err
// never reaches the handler, by Subscribe or SubscribeBatch; it is settled
// Term with that error, and the message behind it is handled as usual.
func TestUndecodableDeliveryGivenUp(t *testing.T) {
	for _, batch := range []bool{false, true} {
		f, c := newFake(messaging.Capabilities{BrokerAttempts: true, NativeDelay: true})
		var mu sync.Mutex
		var seen []string
		var sub messaging.Subscription
		var err error
		if batch {
			sub, err = c.SubscribeBatch(t.Context(), "t", func(_ context.Context, ms []*messaging.Message) []error {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range ms {
					seen = append(seen, m.ID)
				}
				return nil
			}, messaging.BatchSize(1))
		} else {
			sub, err = c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, m.ID)
				return nil
			})
		}
		if err != nil {
			t.Fatal(err)
		}
		f.in <- &messaging.Message{ID: "poison", Attempt: 1, Header: messaging.Header{"undecodable": "table of 9000 entries"}}
		f.in <- &messaging.Message{ID: "canary", Attempt: 1}
		first, second := f.next(t), f.next(t)
		if first.Msg.ID != "poison" || first.Outcome != driver.Term || first.Err == nil || first.Err.Error() != "table of 9000 entries" {
			t.Errorf("batch=%v: first settlement %s %v %v; want poison terminated with its decode error", batch, first.Msg.ID, first.Outcome, first.Err)
		}
		if second.Msg.ID != "canary" || second.Outcome != driver.Ack {
			t.Errorf("batch=%v: second settlement %s %v; want canary acked", batch, second.Msg.ID, second.Outcome)
		}
		_ = sub.Close()
		_ = c.Close()
		mu.Lock()
		if len(seen) != 1 || seen[0] != "canary" {
			t.Errorf("batch=%v: handler saw %v; want only the canary", batch, seen)
		}
		mu.Unlock()
	}
}
