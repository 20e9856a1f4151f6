package batch_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/batch"
)

var errBoom = errors.New("boom")

// sizes records the batch sizes a BatchHandler saw.
type sizes struct {
	mu sync.Mutex
	n  []int
}

func (s *sizes) add(n int) {
	s.mu.Lock()
	s.n = append(s.n, n)
	s.mu.Unlock()
}

func (s *sizes) get() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.n...)
}

// gatherOnly hides the memory adapter's SubscribeBatch, so Subscribe
// gathers batches from single deliveries.
type gatherOnly struct{ messaging.Client }

// native records that Subscribe used the adapter's batch fetch.
type native struct {
	messaging.Client
	calls atomic.Int32
}

func (n *native) SubscribeBatch(ctx context.Context, topic string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	n.calls.Add(1)
	return n.Client.(messaging.BatchConsumer).SubscribeBatch(ctx, topic, h, opts...)
}

func TestSubscribeBatchesAndSettlesEachMessage(t *testing.T) {
	t.Run("native", func(t *testing.T) {
		c := &native{Client: mwtest.Memory(t)}
		testSubscribeBatches(t, c)
		if c.calls.Load() != 1 {
			t.Fatalf("SubscribeBatch called %d times, want 1: Subscribe must use the adapter's batch fetch", c.calls.Load())
		}
	})
	t.Run("gathered", func(t *testing.T) { testSubscribeBatches(t, gatherOnly{mwtest.Memory(t)}) })
}

func testSubscribeBatches(t *testing.T, c messaging.Client) {
	ctx := mwtest.Context(t, time.Minute)
	topic := mwtest.Topic(t, c, "batch")
	var ids []string
	for i := range 20 {
		m := &messaging.Message{Payload: []byte(strconv.Itoa(i))}
		if i == 7 {
			m.Payload = []byte("bad")
		}
		mwtest.Publish(t, ctx, c, topic, m)
		ids = append(ids, m.ID)
	}
	var got sizes
	col := integration.NewCollector()
	var badAttempts []int
	var mu sync.Mutex
	h := func(_ context.Context, msgs []*messaging.Message) []error {
		got.add(len(msgs))
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			if string(m.Payload) == "bad" && m.Attempt == 1 {
				mu.Lock()
				badAttempts = append(badAttempts, m.Attempt)
				mu.Unlock()
				errs[i] = errBoom
				continue
			}
			col.Add(m)
		}
		return errs
	}
	sub, err := batch.Subscribe(ctx, c, topic, h, batch.WithBatchSize(5), batch.WithBatchTimeout(50*time.Millisecond),
		batch.WithSubscribeOptions(messaging.Group("g")))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	col.WaitDistinct(t, 20, 10*time.Second)
	col.Report(t, ids)
	if d := col.Duplicates(); d != 0 {
		t.Errorf("%d messages were handled twice: only the failed one may come back", d)
	}
	batches := got.get()
	biggest := 0
	for _, n := range batches {
		if n > 5 {
			t.Fatalf("batch of %d > MaxMessages 5", n)
		}
		biggest = max(biggest, n)
	}
	if biggest < 2 {
		t.Fatalf("batch sizes %v: nothing was batched", batches)
	}
	for _, m := range col.Messages() {
		if string(m.Payload) == "bad" && m.Attempt != 2 {
			t.Errorf("the failed message succeeded on attempt %d, want 2 (redelivered once)", m.Attempt)
		}
	}
}

// gather calls h concurrently for n messages and returns their results.
func gather(ctx context.Context, h messaging.Handler, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = h(ctx, &messaging.Message{ID: strconv.Itoa(i), Payload: []byte{byte(i)}, Attempt: 1})
		})
	}
	wg.Wait()
	return errs
}

func TestSubscribeSplitsNativeBatchesByBytes(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, time.Minute)
	topic := mwtest.Topic(t, c, "split")
	msgs := make([]*messaging.Message, 10)
	for i := range msgs {
		msgs[i] = &messaging.Message{Payload: make([]byte, 100)}
	}
	mwtest.Publish(t, ctx, c, topic, msgs...)
	col := integration.NewCollector()
	var got sizes
	sub, err := batch.Subscribe(ctx, c, topic, func(_ context.Context, msgs []*messaging.Message) []error {
		got.add(len(msgs))
		for _, m := range msgs {
			col.Add(m)
		}
		return nil
	}, batch.WithBatchSize(10), batch.WithMaxBatchBytes(3*msgs[0].Size()), batch.WithBatchTimeout(time.Second), batch.WithSubscribeOptions(messaging.Group("g")))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	col.WaitDistinct(t, 10, 10*time.Second)
	for _, n := range got.get() {
		if n > 3 {
			t.Fatalf("batch sizes %v: MaxBytes allows 3 messages per batch", got.get())
		}
	}
	if d := col.Duplicates(); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
}

func TestPartialFailure(t *testing.T) {
	h := mwtest.Must(batch.Handler(func(_ context.Context, msgs []*messaging.Message) []error {
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			if m.Payload[0]%2 == 1 {
				errs[i] = messaging.Permanent(errBoom)
			}
		}
		return errs
	}, batch.WithBatchSize(4), batch.WithBatchTimeout(time.Minute)))
	for i, err := range gather(context.Background(), h, 4) {
		if odd := i%2 == 1; odd != (err != nil) || (odd && !messaging.IsPermanent(err)) {
			t.Errorf("message %d: result %v", i, err)
		}
	}
}

func TestWrongResultLengthAndPanicFailAll(t *testing.T) {
	short := mwtest.Must(batch.Handler(func(context.Context, []*messaging.Message) []error { return []error{nil} },
		batch.WithBatchSize(3), batch.WithBatchTimeout(time.Minute)))
	for i, err := range gather(context.Background(), short, 3) {
		if err == nil {
			t.Errorf("message %d succeeded although the result had the wrong length", i)
		}
	}
	panicky := mwtest.Must(batch.Handler(func(context.Context, []*messaging.Message) []error { panic("oops") },
		batch.WithBatchSize(3), batch.WithBatchTimeout(time.Minute)))
	for i, err := range gather(context.Background(), panicky, 3) {
		if !errors.Is(err, messaging.ErrHandlerPanic) {
			t.Errorf("message %d: %v, want ErrHandlerPanic", i, err)
		}
	}
}

func TestLingerSendsPartialBatch(t *testing.T) {
	const linger = 100 * time.Millisecond
	var got sizes
	h := mwtest.Must(batch.Handler(func(_ context.Context, msgs []*messaging.Message) []error { got.add(len(msgs)); return nil },
		batch.WithBatchSize(10), batch.WithBatchTimeout(linger)))
	start := time.Now()
	if err := h(context.Background(), &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	// Elapsed time is the subject: the batch must have waited for the linger.
	if el := time.Since(start); el < linger {
		t.Errorf("partial batch sent after %v, before the %v linger", el, linger)
	}
	if s := got.get(); len(s) != 1 || s[0] != 1 {
		t.Errorf("batches %v, want [1]", s)
	}
}

func TestWindowDrainsAtWindowEnd(t *testing.T) {
	const window = 300 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	var got sizes
	h := mwtest.Must(batch.Handler(func(_ context.Context, msgs []*messaging.Message) []error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		got.add(len(msgs))
		return nil
	}, batch.WithBatchSize(100), batch.WithWindow(window)))
	gather(context.Background(), h, 3)
	if s := got.get(); len(s) > 2 || s[0]+sum(s[1:]) != 3 {
		t.Fatalf("batches %v, want the 3 messages in one window (two if a boundary fell between calls)", s)
	}
	// The batch ran on a window boundary (a multiple of the window).
	off := at[0].Sub(at[0].Truncate(window))
	if off > 50*time.Millisecond && off < window-5*time.Millisecond {
		t.Errorf("batch ran %v into a window, not at its boundary", off)
	}
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

func TestCancelledWaiterIsWithdrawn(t *testing.T) {
	var got sizes
	h := mwtest.Must(batch.Handler(func(_ context.Context, msgs []*messaging.Message) []error {
		got.add(len(msgs))
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			if m.ID == "withdrawn" {
				panic("the batch handler got the withdrawn message")
			}
			if m.Payload[0] == 1 {
				errs[i] = errBoom
			}
		}
		return errs
	}, batch.WithBatchSize(2), batch.WithBatchTimeout(time.Minute)))
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error)
	go func() { res <- h(ctx, &messaging.Message{ID: "withdrawn", Payload: []byte{9}}) }()
	fault.AwaitGoroutine(t, "batch.(*accumulator).handle", "select") // it waits in its batch
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// Two more fill a batch that must not contain the withdrawn one, and
	// each gets its own result.
	errs := gather(context.Background(), h, 2)
	if s := got.get(); len(s) != 1 || s[0] != 2 {
		t.Fatalf("batches %v, want [2]", s)
	}
	if errs[0] != nil || !errors.Is(errs[1], errBoom) {
		t.Fatalf("results %v, want [nil boom]", errs)
	}
}

// TestSubscribeEndToEnd consumes in batches on every registered backend
// (natively where the adapter is a messaging.BatchConsumer, gathered
// elsewhere): every message arrives, failed ones come back once with
// Attempt 2, and succeeded ones are not redelivered.
func TestSubscribeEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		if !c.Capabilities().Groups {
			t.Skip("needs redelivery (Groups)")
		}
		_, native := c.(messaging.BatchConsumer)
		t.Logf("native batch fetch: %v", native)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "batchsub")
		group := integration.UniqueName(t, "g")
		if err := messaging.Provision(ctx, c, topic, group); err != nil {
			t.Fatal(err)
		}
		const n = 60
		msgs := make([]*messaging.Message, n)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: []byte(strconv.Itoa(i))}
		}
		mwtest.Publish(t, ctx, c, topic, msgs...)
		col := integration.NewCollector()
		var got sizes
		sub, err := batch.Subscribe(ctx, c, topic, func(_ context.Context, msgs []*messaging.Message) []error {
			got.add(len(msgs))
			errs := make([]error, len(msgs))
			for i, m := range msgs {
				col.Add(m)
				if k, _ := strconv.Atoi(string(m.Payload)); k%10 == 0 && m.Attempt == 1 {
					errs[i] = errBoom
				}
			}
			return errs
		}, batch.WithBatchSize(20), batch.WithBatchTimeout(50*time.Millisecond), batch.WithSubscribeOptions(messaging.Group(group)))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if !col.Wait(hn.Timeout, func(c *integration.Collector) bool { return c.Total() >= n+n/10 }) {
			t.Fatalf("%d deliveries, want %d", col.Total(), n+n/10)
		}
		col.Report(t, ids(msgs))
		for _, m := range msgs {
			want := 1
			if k, _ := strconv.Atoi(string(m.Payload)); k%10 == 0 {
				want = 2
			}
			if got := col.Count(m.ID); got != want {
				t.Errorf("message %s delivered %d times, want %d", m.Payload, got, want)
			}
		}
		if biggest := slices.Max(got.get()); biggest < 2 || biggest > 20 {
			t.Errorf("batch sizes %v: want batches of 2 to 20", got.get())
		}
	})
}

func ids(msgs []*messaging.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
