package kafkatest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/integration"
)

// queuedBehind is a client whose first PublishAsync message's produce
// request is held at the broker until release is closed, and a second
// message, given with ctx second, that its lane has handed on to the
// producer, where it waits behind the first (keyless: the next lane, the
// same partition).
type queuedBehind struct {
	c             *kafka.Client
	g             *gate
	topic         string
	first, second chan error // each message's result
	release       chan struct{}
	ctx           context.Context // the test's, bounded
}

func newQueuedBehind(t *testing.T, name string, second context.Context) *queuedBehind {
	t.Helper()
	cluster, g := gatedCluster(t)
	q := &queuedBehind{g: g, first: make(chan error, 1), second: make(chan error, 1)}
	var err error
	q.c, err = kafka.New(cluster.ListenAddrs(), kafka.WithTransport(q.g))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.c.Close() })
	topic := integration.UniqueName(t, name)
	q.topic = topic
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	q.ctx = ctx
	if err := q.c.Publish(ctx, topic, messaging.NewMessage([]byte("warm"))); err != nil {
		t.Fatal(err)
	}
	entered, release := q.g.holdNext()
	q.release = release
	q.c.PublishAsync(ctx, topic, messaging.NewMessage([]byte("first")), func(_ *messaging.Message, err error) { q.first <- err })
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first message's request never came")
	}
	probe := integration.NewHandedOn(second)
	q.c.PublishAsync(probe, topic, messaging.NewMessage([]byte("second")), func(_ *messaging.Message, err error) { q.second <- err })
	select {
	case <-probe.HandedOn():
	case <-ctx.Done():
		t.Fatal("the second message's lane never handed it on")
	}
	return q
}

// TestPublishAsyncCtxEndedWhileQueuedInProducer: a message whose batch
// waits in the client's producer behind another lane's request to the same
// partition, and whose ctx ends meanwhile, fails with ctx's error when its
// turn comes instead of being sent (messaging.AsyncPublisher: a message
// queued in the client whose ctx has ended by the time its turn to be sent
// comes fails with ctx's error).
func TestPublishAsyncCtxEndedWhileQueuedInProducer(t *testing.T) {
	mctx, mcancel := context.WithCancel(t.Context())
	q := newQueuedBehind(t, "queuedctx", mctx)
	mcancel()
	close(q.release)
	if err := q.c.Flush(q.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-q.first; err != nil {
		t.Fatalf("first message: %v", err)
	}
	if err := <-q.second; !errors.Is(err, context.Canceled) {
		t.Fatalf("second message, its ctx cancelled while it was queued behind the first: %v, want context.Canceled", err)
	}
	if n := q.g.count(); n != 2 {
		t.Fatalf("%d produce requests, want 2 (warm-up, first): the second message was sent", n)
	}
}

// TestPublishAsyncQueuedInProducerAtClose: a message whose batch waits in
// the client's producer behind another lane's request when Close starts
// fails with ErrClosed instead of being sent (messaging.AsyncPublisher:
// messages still queued in the client fail with ErrClosed before Close
// returns); the message already sent gets the broker's answer.
func TestPublishAsyncQueuedInProducerAtClose(t *testing.T) {
	q := newQueuedBehind(t, "queuedclose", t.Context())
	integration.CloseWhileHeld(t, q.ctx, q.c, q.topic, q.release)
	if err := <-q.first; err != nil {
		t.Fatalf("first message (sent before Close): %v", err)
	}
	if err := <-q.second; !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("second message, queued behind the first when Close started: %v, want ErrClosed", err)
	}
}
