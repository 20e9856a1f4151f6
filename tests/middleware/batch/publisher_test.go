package batch_test

import (
	"context"
	"errors"
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

// calls records the Publish calls it gets; fail, when set, decides
// per-message failures.
type calls struct {
	mu    sync.Mutex
	sizes []int
	fail  func(*messaging.Message) error
}

func (c *calls) Publish(_ context.Context, _ string, msgs ...*messaging.Message) error {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(msgs))
	c.mu.Unlock()
	if c.fail == nil {
		return nil
	}
	errs := make([]error, len(msgs))
	failed := false
	for i, m := range msgs {
		errs[i] = c.fail(m)
		failed = failed || errs[i] != nil
	}
	if failed {
		return &messaging.PublishError{Errs: errs}
	}
	return nil
}

func (c *calls) Close() error { return nil }

func (c *calls) get() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

func publishConcurrently(p messaging.Publisher, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = p.Publish(context.Background(), "t", &messaging.Message{Payload: []byte(strconv.Itoa(i))})
		})
	}
	wg.Wait()
	return errs
}

func TestPublisherCoalescesBySize(t *testing.T) {
	under := &calls{}
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchSize(10), batch.WithBatchTimeout(time.Minute)))
	defer p.Close()
	for i, err := range publishConcurrently(p, 50) {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if got := under.get(); len(got) != 5 || sum(got) != 50 {
		t.Fatalf("underlying calls %v, want 5 calls of 10", got)
	}
}

// blocking is a Publisher whose first call waits for release.
type blocking struct {
	calls
	entered, release chan struct{}
	first            atomic.Bool
}

func (b *blocking) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if b.first.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.release
	}
	return b.calls.Publish(ctx, topic, msgs...)
}

func TestPublisherGathersWhileSending(t *testing.T) {
	under := &blocking{entered: make(chan struct{}), release: make(chan struct{})}
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchSize(10))) // linger 0, one send in flight
	defer p.Close()
	first := make(chan error)
	go func() { first <- p.Publish(context.Background(), "t", &messaging.Message{}) }()
	<-under.entered // the first call is being sent at once, alone
	// Ten more gather while it is in flight; the tenth fills the batch,
	// which is then sent although the first send has not finished.
	for i, err := range publishConcurrently(p, 10) {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if got := under.get(); len(got) != 1 || got[0] != 10 {
		t.Fatalf("calls completed while the first was in flight: %v, want [10]", got)
	}
	close(under.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := under.get(); len(got) != 2 || got[1] != 1 {
		t.Fatalf("calls %v, want [10 1]", got)
	}
}

func TestPublisherMaxBytes(t *testing.T) {
	under := &calls{}
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchSize(1000), batch.WithMaxBatchBytes(100), batch.WithBatchTimeout(time.Minute)))
	defer p.Close()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _ = p.Publish(context.Background(), "t", &messaging.Message{Payload: make([]byte, 50)}) })
	}
	wg.Wait()
	if got := under.get(); len(got) != 5 {
		t.Fatalf("underlying calls %v, want 5 of two 50-byte messages", got)
	}
}

func TestPublisherPerCallerResults(t *testing.T) {
	errBad := errors.New("rejected")
	under := &calls{fail: func(m *messaging.Message) error {
		if string(m.Payload) == "3" {
			return errBad
		}
		return nil
	}}
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchSize(8), batch.WithBatchTimeout(time.Minute)))
	defer p.Close()
	for i, err := range publishConcurrently(p, 8) {
		if (i == 3) != (err != nil) {
			t.Errorf("caller %d: %v", i, err)
		}
		var pe *messaging.PublishError
		if i == 3 && (!errors.As(err, &pe) || len(pe.Errs) != 1 || !errors.Is(err, errBad)) {
			t.Errorf("caller 3: %v, want a PublishError with its own single entry", err)
		}
	}
	if got := under.get(); len(got) != 1 {
		t.Fatalf("underlying calls %v, want one", got)
	}
}

func TestPublisherLingerAndClose(t *testing.T) {
	under := &calls{}
	const linger = 50 * time.Millisecond
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchTimeout(linger)))
	start := time.Now()
	if err := p.Publish(context.Background(), "t", &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	// Elapsed time is the subject: a lone message waits for the linger.
	if el := time.Since(start); el < linger {
		t.Errorf("sent after %v, before the %v linger", el, linger)
	}
	// A pending batch is sent by Close: nobody waits for the linger.
	under2 := &calls{}
	slow := mwtest.Must(batch.NewPublisher(under2, batch.WithBatchTimeout(time.Hour)))
	res := make(chan error, 1)
	go func() { res <- slow.Publish(context.Background(), "t", &messaging.Message{}, &messaging.Message{}) }()
	fault.AwaitGoroutine(t, "batch.(*publisher).Publish", "select") // the call waits in its batch
	if err := slow.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("pending publish: %v, want nil (sent by Close)", err)
		}
		if got := under2.get(); len(got) != 1 || got[0] != 2 {
			t.Fatalf("publish succeeded but the underlying calls were %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left a publish waiting for the hour-long linger")
	}
	if err := slow.Publish(context.Background(), "t", &messaging.Message{}); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
}

func TestPublisherCancelledCallerIsNotSent(t *testing.T) {
	under := &calls{}
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchSize(2), batch.WithBatchTimeout(time.Minute)))
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Publish(ctx, "t", &messaging.Message{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	publishConcurrently(p, 2)
	if got := under.get(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("underlying calls %v, want [2]", got)
	}
}

// TestPublisherIsolatesInvalidCall: a caller's message that the adapter
// refuses before sending anything (too large, a reserved header) fails that
// caller only.
func TestPublisherIsolatesInvalidCall(t *testing.T) {
	c := mwtest.Memory(t) // 1 MiB limit
	for _, bad := range []struct {
		msg  *messaging.Message
		want error
	}{
		{&messaging.Message{Payload: make([]byte, 2<<20)}, messaging.ErrMessageTooLarge},
		{&messaging.Message{Header: messaging.Header{"msgkit-x": "v"}}, messaging.ErrInvalidHeader},
	} {
		p := mwtest.Must(batch.NewPublisher(c, batch.WithBatchSize(2), batch.WithMaxBatchBytes(0), batch.WithBatchTimeout(time.Minute)))
		var wg sync.WaitGroup
		var okErr, badErr error
		wg.Go(func() { okErr = p.Publish(context.Background(), "t", &messaging.Message{Payload: []byte("ok")}) })
		wg.Go(func() { badErr = p.Publish(context.Background(), "t", bad.msg) })
		wg.Wait()
		_ = p.Close()
		if okErr != nil || !errors.Is(badErr, bad.want) {
			t.Fatalf("ok caller: %v; bad caller: %v (want nil and %v)", okErr, badErr, bad.want)
		}
	}
}

// TestPublisherEndToEnd publishes through the batcher on every registered
// backend and checks, by ID, that every confirmed message is delivered.
func TestPublisherEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "batchpub")
		col := integration.NewCollector()
		mwtest.Subscribe(t, ctx, c, topic, col.Handler(), messaging.Group(integration.UniqueName(t, "g")))
		p := mwtest.Must(batch.NewPublisher(c, batch.WithBatchSize(20), batch.WithBatchTimeout(5*time.Millisecond)))
		defer p.Close()
		const n = 200
		ids := make([]string, n)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				m := integration.WithIDs(c, &messaging.Message{Payload: []byte(strconv.Itoa(i))})[0]
				errs[i] = p.Publish(ctx, topic, m)
				ids[i] = m.ID
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		col.WaitDistinct(t, n, hn.Timeout)
		col.Report(t, ids)
	})
}

// TestPublisherWithdrawsCancelledCaller: a caller whose context ends while
// it waits in a batch gets ctx.Err(), and its messages are taken out of the
// batch: they no longer count towards WithBatchSize, and the batch is sent
// without them.
func TestPublisherWithdrawsCancelledCaller(t *testing.T) {
	under := &calls{}
	p := mwtest.Must(batch.NewPublisher(under, batch.WithBatchSize(2), batch.WithBatchTimeout(time.Hour)))
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- p.Publish(ctx, "t", &messaging.Message{}) }()
	fault.AwaitGoroutine(t, "batch.(*publisher).Publish", "select") // the call waits in its batch
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	sent := make(chan []error, 1)
	go func() { sent <- publishConcurrently(p, 2) }()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatalf("two callers still wait for the hour-long linger of a batch of size 2 (underlying calls %v): the withdrawn message still counts", under.get())
	}
	if got := under.get(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("underlying calls %v, want [2]", got)
	}
}
