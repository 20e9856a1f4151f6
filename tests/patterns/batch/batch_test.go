package batch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/batch"
	"github.com/msgkit/messaging/patterns/codec"
)

type item struct {
	N int `json:"n"`
}

func topic(t *testing.T, c messaging.Client, prefix string) string {
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, name)
		}
	})
	return name
}

// recorder records batch sizes and the items seen.
type recorder struct {
	mu    sync.Mutex
	sizes []int
	seen  map[int]int
	sig   chan struct{}
}

func newRecorder() *recorder { return &recorder{seen: map[int]int{}, sig: make(chan struct{}, 1)} }

func (r *recorder) handle(_ context.Context, items []item) error {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(items))
	for _, it := range items {
		r.seen[it.N]++
	}
	r.mu.Unlock()
	select {
	case r.sig <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got := len(r.seen)
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.sig:
		case <-deadline:
			t.Fatalf("%d of %d items handled", got, n)
		}
	}
}

func publish(t *testing.T, c messaging.Client, tp string, from, to int) {
	var msgs []*messaging.Message
	for i := from; i < to; i++ {
		m, err := codec.Encode(nil, item{N: i})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := c.Publish(t.Context(), tp, msgs...); err != nil {
		t.Fatal(err)
	}
}

func TestRealTimeHandlesOneAtATime(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		tp := topic(t, c, "rt")
		r := newRecorder()
		sub, err := batch.Subscribe(t.Context(), c, tp, integration.UniqueName(t, "g"), batch.RealTime, r.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		publish(t, c, tp, 0, 20)
		r.waitDistinct(t, 20, h.Timeout)
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.sizes {
			if s != 1 {
				t.Fatalf("real-time mode got a batch of %d", s)
			}
		}
	})
}

func TestBulkCollectsBatches(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		tp := topic(t, c, "bulk")
		r := newRecorder()
		cfg := batch.Config{Size: 10, Window: 500 * time.Millisecond}
		sub, err := batch.Subscribe(t.Context(), c, tp, integration.UniqueName(t, "g"), cfg, r.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		publish(t, c, tp, 0, 45)
		r.waitDistinct(t, 45, h.Timeout)
		r.mu.Lock()
		defer r.mu.Unlock()
		biggest := 0
		for _, s := range r.sizes {
			if s > cfg.Size {
				t.Errorf("batch of %d exceeds Size %d", s, cfg.Size)
			}
			biggest = max(biggest, s)
		}
		// 45 messages published at once fill at least one batch.
		if biggest < 2 {
			t.Errorf("batch sizes %v: no batching happened", r.sizes)
		}
		t.Logf("batch sizes: %v", r.sizes)
	})
}

func TestFailedBatchIsRedeliveredWhole(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		if !c.Capabilities().Groups {
			t.Skipf("%s does not redeliver failed messages (no Groups capability)", h.Name)
		}
		tp := topic(t, c, "bulk-fail")
		r := newRecorder()
		var failed sync.Once
		fail := func(ctx context.Context, items []item) error {
			var err error
			failed.Do(func() { err = errors.New("database unavailable") })
			if err != nil {
				return messaging.RetryAfter(err, 10*time.Millisecond)
			}
			return r.handle(ctx, items)
		}
		sub, err := batch.Subscribe(t.Context(), c, tp, integration.UniqueName(t, "g"), batch.Config{Size: 5, Window: 200 * time.Millisecond}, fail)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		publish(t, c, tp, 0, 5)
		r.waitDistinct(t, 5, h.Timeout)
	})
}

func TestHandlerModes(t *testing.T) {
	noop := func(context.Context, []item) error { return nil }
	if _, opts, err := batch.Handler(batch.RealTime, noop, nil); err != nil || len(opts) != 0 {
		t.Errorf("real-time mode sets %d subscribe options (error %v), want none", len(opts), err)
	}
	_, opts, err := batch.Handler(batch.Config{Size: 8}, noop, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := messaging.NewSubscribeOptions(1, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if o.Concurrency != 8 || o.Prefetch < 8 {
		t.Errorf("bulk mode: concurrency %d prefetch %d, want 8 and >= 8", o.Concurrency, o.Prefetch)
	}
}

func TestBulkDropsUndecodableMessageAlone(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		tp := topic(t, c, "bulk-bad")
		r := newRecorder()
		sub, err := batch.Subscribe(t.Context(), c, tp, integration.UniqueName(t, "g"), batch.Config{Size: 4, Window: 200 * time.Millisecond}, r.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		if err := c.Publish(t.Context(), tp, &messaging.Message{Payload: []byte("{broken")}); err != nil {
			t.Fatal(err)
		}
		publish(t, c, tp, 0, 3)
		r.waitDistinct(t, 3, h.Timeout)
		r.mu.Lock()
		defer r.mu.Unlock()
		for n, k := range r.seen {
			if k != 1 {
				t.Errorf("item %d handled %d times: the bad message failed its batch", n, k)
			}
		}
	})
}

// TestSubscribeOptionsReachTheSubscription: WithSubscribeOptions's options
// reach the subscription (here StartAt(Latest) with one handler at a time:
// an item published before the group existed is not handled, the next one
// is, and in the topic's order it would have come first).
func TestSubscribeOptionsReachTheSubscription(t *testing.T) {
	c := mwtest.Memory(t)
	tp := topic(t, c, "opts")
	publish(t, c, tp, 1, 2)
	handled := make(chan int, 2)
	sub, err := batch.Subscribe(t.Context(), c, tp, integration.UniqueName(t, "g"), batch.RealTime, func(_ context.Context, items []item) error {
		for _, it := range items {
			handled <- it.N
		}
		return nil
	}, batch.WithSubscribeOptions(messaging.StartAt(messaging.Latest), messaging.Concurrency(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	publish(t, c, tp, 2, 3)
	select {
	case n := <-handled:
		if n != 2 {
			t.Fatalf("first item handled %d, want 2, published after Subscribe: StartAt(Latest) was not applied", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no item handled within 10s")
	}
}
