package natstest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestCorePublishAsyncResultAfterServer: in core mode a PublishAsync result
// comes only once the server has processed the message. A subscription on
// the client's own connection shows it: the server sends a connection the
// messages it delivers to it before the answer to a flush that follows
// them, so when message i's result comes, at least i+1 messages are queued
// in that subscription.
func TestCorePublishAsyncResultAfterServer(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core-async")
	sub := ownSubscription(t, c, topic)
	const n = 5000
	var mu sync.Mutex
	queued := make([]int, n) // messages in sub when message i got its result
	errs := make([]error, n)
	calls := 0
	for i := range n {
		c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("x")}, func(_ *messaging.Message, err error) {
			q, _, _ := sub.Pending()
			mu.Lock()
			queued[i], errs[i] = q, err
			calls++
			mu.Unlock()
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != n {
		t.Fatalf("%d results for %d messages", calls, n)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("message %d: %v", i, errs[i])
		}
		if queued[i] < i+1 {
			t.Fatalf("message %d: result with %d messages at the server's subscriber, want at least %d", i, queued[i], i+1)
		}
	}
}

// TestCorePublishAsyncWithoutCallback: in core mode a message given
// without a callback is not tracked, but Flush still returns only once the
// server has processed it: when Flush returns, every message is queued in a
// subscription on the client's own connection (see
// TestCorePublishAsyncResultAfterServer).
func TestCorePublishAsyncWithoutCallback(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core-loose")
	sub := ownSubscription(t, c, topic)
	const n = 20000
	for range n {
		c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("x")}, nil)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if q, _, _ := sub.Pending(); q != n {
		t.Fatalf("%d of %d messages at the server's subscriber when Flush returned", q, n)
	}
	if err := c.Flush(ctx); err != nil { // nothing left: at once
		t.Fatal(err)
	}
}

// TestCorePublishAsyncWithoutCallbackKeepsNothing: in core mode a call
// without a callback keeps nothing of the message once it returns, so a
// caller may publish one Message value again and again, rewriting its
// payload's bytes and its header between calls: every message arrives as
// it was when its call was made, in the order of the calls.
func TestCorePublishAsyncWithoutCallbackKeepsNothing(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core-reuse")
	sub := ownSubscription(t, c, topic)
	const n = 2000
	m := &messaging.Message{Payload: make([]byte, 8)}
	for i := range n {
		binary.BigEndian.PutUint64(m.Payload, uint64(i))
		if i%2 == 1 { // every other one with a header block
			m.Header = messaging.Header{"n": strconv.Itoa(i)}
		} else {
			m.Header = nil
		}
		c.PublishAsync(t.Context(), topic, m, nil)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		nm, err := sub.NextMsg(0)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		got := -1
		if len(nm.Data) == 8 {
			got = int(binary.BigEndian.Uint64(nm.Data))
		}
		h := nm.Header.Get("n")
		if got != i || (i%2 == 1) != (h == strconv.Itoa(i)) {
			t.Fatalf("message %d arrived as %d with header n=%q", i, got, h)
		}
	}
}

// ownSubscription subscribes to topic on c's own connection, without
// pending limits, and returns once the server has the subscription. The
// server sends a connection the messages it delivers to it before its
// answer to a flush that follows them: what the subscription holds when a
// Flush returns is what the server had processed.
func ownSubscription(t *testing.T, c *natsadapter.Client, topic string) *natsgo.Subscription {
	t.Helper()
	sub, err := c.Conn().SubscribeSync(topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := c.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestCorePublishAsyncWindow: in core mode at most 4,096 messages are
// pending; PublishAsync then waits for room until its ctx ends, and the
// message fails with ctx's error. Here the first message's callback holds
// the results back until the window is full.
func TestCorePublishAsyncWindow(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core-window")
	const window = 4096
	release := make(chan struct{})
	var failed failures
	done := failed.done
	c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("first")}, func(m *messaging.Message, err error) {
		<-release
		done(m, err)
	})
	for range window - 1 {
		c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("x")}, done)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	late := make(chan error, 1)
	c.PublishAsync(ctx, topic, &messaging.Message{Payload: []byte("late")}, func(_ *messaging.Message, err error) { late <- err })
	select {
	case err := <-late:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("message over the window: %v, want an error wrapping context.DeadlineExceeded", err)
		}
	default:
		t.Error("message over the window: no result when PublishAsync returned")
	}
	// A message without a callback does not wait for the window.
	loose, lcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer lcancel()
	begin := time.Now()
	c.PublishAsync(loose, topic, &messaging.Message{Payload: []byte("loose")}, nil)
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("a message without a callback waited %v for the full window", took)
	}
	close(release)
	fctx, fcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer fcancel()
	if err := c.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	failed.none(t, "the window")
}

// TestCoreCloseWaitsForMessageWaitingForRoom: in core mode, a message given
// to PublishAsync that waits for room in the window (4,096) when Close
// begins fails with messaging.ErrClosed, and its callback returns before
// Close does (AsyncPublisher's Close contract). The first message's
// callback holds the window full until the waiting message's callback
// runs; that callback then waits up to 2s for Close to return. Close used
// to wait only for the flusher, and returned while that callback ran.
func TestCoreCloseWaitsForMessageWaitingForRoom(t *testing.T) {
	srv := natstest.StartServer(t)
	c := natstest.OpenURL(t, srv.URL(), natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core-close-room")
	release := make(chan struct{})
	c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("0")}, func(*messaging.Message, error) { <-release })
	for range 4095 {
		c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("x")}, func(*messaging.Message, error) {})
	}
	closed := make(chan struct{})
	result := make(chan error, 1)
	var returnedFirst atomic.Bool // Close returned while the callback ran
	go c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("late")}, func(_ *messaging.Message, err error) {
		close(release)
		select {
		case <-closed:
			returnedFirst.Store(true)
		case <-time.After(2 * time.Second):
		}
		result <- err
	})
	fault.AwaitGoroutine(t, "publishAsyncCore(", "select")
	go func() {
		_ = c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20s")
	}
	select {
	case err := <-result:
		if !errors.Is(err, messaging.ErrClosed) {
			t.Errorf("the message waiting for room: %v, want an error wrapping messaging.ErrClosed", err)
		}
	default:
		t.Fatal("Close returned before the result of the message waiting for room")
	}
	if returnedFirst.Load() {
		t.Error("Close returned while the callback of the message waiting for room still ran")
	}
}
