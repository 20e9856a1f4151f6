package kafkatest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/integration"
)

// checkedCtx is a context that closes second when its Err is called the
// second time: PublishAsync checks it once when it is given the message
// and once more when its lane hands the message's batch on.
type checkedCtx struct {
	context.Context
	calls  atomic.Int32
	second chan struct{}
}

func (c *checkedCtx) Err() error {
	err := c.Context.Err()
	if c.calls.Add(1) == 2 {
		close(c.second)
	}
	return err
}

// TestPublishAsyncCtxEndedWhileQueuedInProducer: a message whose batch
// waits in the client's producer behind another lane's request to the same
// partition, and whose ctx ends meanwhile, fails with ctx's error when its
// turn comes instead of being sent (messaging.AsyncPublisher: a message
// queued in the client whose ctx has ended by the time its turn to be sent
// comes fails with ctx's error).
func TestPublishAsyncCtxEndedWhileQueuedInProducer(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	tr := &kafkago.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	g := &gate{inner: tr}
	c, err := kafka.New(cluster.ListenAddrs(), kafka.WithTransport(g))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := integration.UniqueName(t, "queuedctx")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, messaging.NewMessage([]byte("warm"))); err != nil {
		t.Fatal(err)
	}

	// The first message's request is held at the broker.
	entered, release := g.holdNext()
	first := make(chan error, 1)
	c.PublishAsync(ctx, topic, messaging.NewMessage([]byte("first")), func(_ *messaging.Message, err error) { first <- err })
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first message's request never came")
	}
	// The second (keyless: the next lane, the same partition) is handed on
	// by its lane and waits behind it; its ctx ends there.
	mctx, mcancel := context.WithCancel(ctx)
	probe := &checkedCtx{Context: mctx, second: make(chan struct{})}
	second := make(chan error, 1)
	c.PublishAsync(probe, topic, messaging.NewMessage([]byte("second")), func(_ *messaging.Message, err error) { second <- err })
	select {
	case <-probe.second:
	case <-ctx.Done():
		t.Fatal("the second message's lane never handed it on")
	}
	mcancel()
	close(release)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first message: %v", err)
	}
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("second message, its ctx cancelled while it was queued behind the first: %v, want context.Canceled", err)
	}
	if n := g.count(); n != 2 {
		t.Fatalf("%d produce requests, want 2 (warm-up, first): the second message was sent", n)
	}
}

// TestPublishAsyncQueuedInProducerAtClose: a message whose batch waits in
// the client's producer behind another lane's request when Close starts
// fails with ErrClosed instead of being sent (messaging.AsyncPublisher:
// messages still queued in the client fail with ErrClosed before Close
// returns); the message already sent gets the broker's answer.
func TestPublishAsyncQueuedInProducerAtClose(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	tr := &kafkago.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	g := &gate{inner: tr}
	c, err := kafka.New(cluster.ListenAddrs(), kafka.WithTransport(g))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := integration.UniqueName(t, "queuedclose")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, messaging.NewMessage([]byte("warm"))); err != nil {
		t.Fatal(err)
	}

	entered, release := g.holdNext()
	first := make(chan error, 1)
	c.PublishAsync(ctx, topic, messaging.NewMessage([]byte("first")), func(_ *messaging.Message, err error) { first <- err })
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first message's request never came")
	}
	probe := &checkedCtx{Context: ctx, second: make(chan struct{})}
	second := make(chan error, 1)
	c.PublishAsync(probe, topic, messaging.NewMessage([]byte("second")), func(_ *messaging.Message, err error) { second <- err })
	select {
	case <-probe.second:
	case <-ctx.Done():
		t.Fatal("the second message's lane never handed it on")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	// Close has started once PublishAsync refuses messages (at once, on
	// the calling goroutine; a message it takes before gets its result
	// later).
	for {
		refused := make(chan error, 1)
		c.PublishAsync(ctx, topic, messaging.NewMessage([]byte("late")), func(_ *messaging.Message, err error) { refused <- err })
		select {
		case err := <-refused:
			if !errors.Is(err, messaging.ErrClosed) {
				t.Fatalf("PublishAsync while Close waits: %v, want ErrClosed", err)
			}
		default:
			if ctx.Err() != nil {
				t.Fatal("Close never refused PublishAsync")
			}
			time.Sleep(time.Millisecond) // polling Close's start
			continue
		}
		break
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	if err := <-first; err != nil {
		t.Fatalf("first message (sent before Close): %v", err)
	}
	if err := <-second; !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("second message, queued behind the first when Close started: %v, want ErrClosed", err)
	}
}
