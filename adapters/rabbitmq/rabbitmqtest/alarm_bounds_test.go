package rabbitmqtest_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestBoundsUnderResourceAlarm: on a private node under a memory alarm
// (unavailable_timeout 1s),
//
//   - subscription: Subscription.Close and Client.Close return within the
//     bound on a connection the broker blocked, with two handlers' messages
//     to settle, an ack and a delayed retry (the broker reads neither
//     basic.ack nor channel.close, nor answers the retry's declarations);
//   - burst: a Publish whose messages fill the socket (the broker stops
//     reading at the first one, inside a write) fails with
//     messaging.ErrUnavailable within the bound, and Close is bounded;
//   - queued: with one publish channel, two concurrent Publish calls (one
//     waits for the other's channel) each fail within about
//     unavailable_timeout of their start;
//   - async: with one publish channel, PublishAsync messages queued behind
//     a batch the block holds each fail within about unavailable_timeout
//     of when they were queued (see checkAsyncQueued).
//
// A client that hangs is closed only after the alarm clears (the cleanups
// run last first), so a failure does not hang the test.
func TestBoundsUnderResourceAlarm(t *testing.T) {
	n := rabbitmqtest.StartNode(t)
	const (
		unavailable = time.Second
		bound       = 5 * time.Second
	)
	var clients []*rabbitmq.Client
	t.Cleanup(func() {
		for _, c := range clients {
			_ = c.Close()
		}
	})
	open := func(params string) *rabbitmq.Client {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		c, err := rabbitmq.Open(ctx, n.URL()+"?unavailable_timeout=1s"+params)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		return c
	}
	// within runs f and reports whether it returned within bound.
	within := func(t *testing.T, what string, f func()) bool {
		t.Helper()
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
			t.Logf("%s returned after %v", what, time.Since(start).Round(time.Millisecond))
			return true
		case <-time.After(bound):
			t.Errorf("%s has not returned after %v", what, bound)
			return false
		}
	}

	// Before the alarm: topology, and a subscription holding a message.
	topic, group := integration.UniqueName(t, "bounds"), integration.UniqueName(t, "g")
	cSub, cBurst, cQueued, cAsync := open(""), open(""), open("&publish_channels=1"), open("&publish_channels=1")
	for _, c := range []*rabbitmq.Client{cSub, cBurst, cQueued, cAsync} {
		if err := c.Provision(t.Context(), topic, group); err != nil {
			t.Fatal(err)
		}
	}
	// Two messages in the handler: one to acknowledge, one to retry later
	// (a delayed retry declares a queue and publishes, on the connection).
	var got sync.WaitGroup
	got.Add(2)
	release := make(chan struct{})
	sub, err := cSub.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got.Done()
		<-release
		if string(m.Payload) == "retry" {
			return messaging.RetryAfter(errors.New("later"), time.Second)
		}
		return nil
	}, messaging.Group(group), messaging.Concurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := cSub.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("ack")}, &messaging.Message{Payload: []byte("retry")}); err != nil {
		t.Fatal(err)
	}
	got.Wait()

	setWatermark(t, n, "absolute", "1")
	t.Cleanup(func() { setWatermark(t, n, "0.4") }) // before the clients close
	awaitBlocked(t, n)

	t.Run("subscription", func(t *testing.T) {
		// A Publish blocks the subscription's connection.
		if err := cSub.Publish(context.Background(), topic, &messaging.Message{Payload: []byte("blocks")}); !errors.Is(err, messaging.ErrUnavailable) {
			t.Fatalf("Publish under the alarm: %v, want ErrUnavailable", err)
		}
		close(release)
		if within(t, "Subscription.Close on a blocked connection", func() { _ = sub.Close() }) {
			within(t, "Client.Close after it", func() { _ = cSub.Close() })
		}
	})

	t.Run("burst", func(t *testing.T) {
		// 16 messages of almost 4 MiB: far more than the socket buffers
		// hold once the broker stops reading.
		msgs := make([]*messaging.Message, 16)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: bytes.Repeat([]byte{'x'}, 4<<20-4096)}
		}
		var err error
		if within(t, "Publish of a 64 MiB burst", func() { err = cBurst.Publish(context.Background(), topic, msgs...) }) {
			t.Logf("Publish of the burst: %v", err)
			if !errors.Is(err, messaging.ErrUnavailable) {
				t.Errorf("Publish of the burst: %v, want ErrUnavailable", err)
			}
		}
		within(t, "Client.Close after the burst", func() { _ = cBurst.Close() })
	})

	t.Run("queued", func(t *testing.T) {
		checkQueued(t, cQueued, topic, unavailable)
	})

	t.Run("async", func(t *testing.T) {
		// A Publish blocks the connection first: the batches then wait
		// for the block to end without writing anything.
		if err := cAsync.Publish(context.Background(), topic, &messaging.Message{Payload: []byte("blocks")}); !errors.Is(err, messaging.ErrUnavailable) {
			t.Fatalf("Publish under the alarm: %v, want ErrUnavailable", err)
		}
		checkAsyncQueued(t, cAsync, topic, unavailable)
	})
}

// checkAsyncQueued queues 2048 messages with one Key on c with
// PublishAsync: one lane sends them in at least two batches (at most 1024
// each), so that at least half wait for the first batch. Each must fail
// with ErrUnavailable within about unavailable of when it was queued, and
// Flush return within about unavailable of the last one (as Close, which
// flushes, does). Measured from before each PublishAsync call, so the
// bounds are conservative.
func checkAsyncQueued(t *testing.T, c *rabbitmq.Client, topic string, unavailable time.Duration) {
	t.Helper()
	const n = 2048
	slack := unavailable / 2
	queued := make([]time.Time, n)
	var mu sync.Mutex
	results := make(map[int][]error, n)
	late := map[int]time.Duration{} // message: how long after its queueing it failed, when too late
	for i := range n {
		queued[i] = time.Now()
		c.PublishAsync(context.Background(), topic, &messaging.Message{Key: "k", Payload: []byte{byte(i)}}, func(_ *messaging.Message, err error) {
			took := time.Since(queued[i])
			mu.Lock()
			defer mu.Unlock()
			results[i] = append(results[i], err)
			if took > unavailable+slack {
				late[i] = took
			}
		})
	}
	last := queued[n-1]
	ctx, cancel := context.WithTimeout(context.Background(), 5*unavailable)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush has not returned after %v: %v", 5*unavailable, err)
	}
	flushed := time.Since(last)
	t.Logf("Flush returned %v after the last PublishAsync", flushed.Round(time.Millisecond))
	if flushed > unavailable+slack {
		t.Errorf("Flush returned %v after the last PublishAsync, want at most about %v", flushed.Round(time.Millisecond), unavailable)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != n {
		t.Errorf("%d of %d messages have a result", len(results), n)
	}
	for i, errs := range results {
		if len(errs) != 1 || !errors.Is(errs[0], messaging.ErrUnavailable) {
			t.Errorf("message %d: results %v, want one ErrUnavailable", i, errs)
			break
		}
	}
	if len(late) > 0 {
		worst := time.Duration(0)
		for _, d := range late {
			worst = max(worst, d)
		}
		t.Errorf("%d of %d messages failed later than %v after they were queued (the latest after %v), want at most about %v", len(late), n, unavailable+slack, worst.Round(time.Millisecond), unavailable)
	}
}

// checkQueued runs two Publish calls at once on c (one publish channel):
// each must fail with ErrUnavailable within about unavailable of its start.
func checkQueued(t *testing.T, c *rabbitmq.Client, topic string, unavailable time.Duration) {
	t.Helper()
	type result struct {
		took time.Duration
		err  error
	}
	res := make(chan result, 2)
	for i := range 2 {
		go func() {
			start := time.Now()
			err := c.Publish(context.Background(), topic, &messaging.Message{Payload: []byte{byte(i)}})
			res <- result{time.Since(start), err}
		}()
	}
	slack := unavailable / 2
	for range 2 {
		select {
		case r := <-res:
			t.Logf("Publish took %v: %v", r.took.Round(time.Millisecond), r.err)
			if !errors.Is(r.err, messaging.ErrUnavailable) {
				t.Errorf("Publish: %v, want ErrUnavailable", r.err)
			}
			if r.took > unavailable+slack {
				t.Errorf("Publish took %v, want at most about %v", r.took.Round(time.Millisecond), unavailable)
			}
		case <-time.After(5 * unavailable):
			t.Fatalf("Publish has not returned after %v", 5*unavailable)
		}
	}
}

// TestQueuedPublishBoundDuringOutage: with one publish channel, while the
// connection is cut (redials refused), two Publish calls each fail with
// ErrUnavailable within about unavailable_timeout of their start, the one
// waiting for the other's channel included, and PublishAsync messages
// queued behind a batch waiting for the broker each fail within about
// unavailable_timeout of when they were queued.
func TestQueuedPublishBoundDuringOutage(t *testing.T) {
	t.Parallel() // its own private node
	n := rabbitmqtest.StartNode(t)
	p := fault.NewProxy(t, n.Addr())
	url := "amqp://guest:guest@" + p.Addr() + "/?unavailable_timeout=1s&publish_channels=1"
	c, cAsync := rabbitmqtest.Open(t, url), rabbitmqtest.Open(t, url)
	topic := integration.UniqueName(t, "outage")
	if err := c.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	if err := cAsync.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	t.Run("publish", func(t *testing.T) { checkQueued(t, c, topic, time.Second) })
	t.Run("async", func(t *testing.T) { checkAsyncQueued(t, cAsync, topic, time.Second) })
}
