package natstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// The tests of this file delete a topic's stream under a live subscription
// or Read, from another client, which recreates it at once by publishing
// to the topic (Publish creates a missing stream). The handler holds the
// last message of the old stream meanwhile, so the subscription finds the
// loss only once the stream is there again. It used to take the loss for
// a transient one (the stream was found when it looked), and resumed on
// the new stream after the old one's last sequence: the new stream's first
// messages were skipped, and ErrTopicDeleted never came.

// TestRecreatedStreamEndsGroupless: a group-less subscription ends with
// ErrTopicDeleted.
func TestRecreatedStreamEndsGroupless(t *testing.T) {
	c, b := natstest.Open(t), natstest.Open(t)
	recreatedEnds(t, "group-less subscription", c, b, nil, func(c messaging.Client, topic string, h messaging.Handler) (messaging.Subscription, error) {
		return c.Subscribe(t.Context(), topic, h, messaging.StartAt(messaging.Earliest), messaging.Prefetch(1), messaging.Concurrency(1))
	})
}

// TestRecreatedStreamEndsGroup: so does a group subscription, whose
// durable consumer went with the stream.
func TestRecreatedStreamEndsGroup(t *testing.T) {
	c, b := natstest.Open(t), natstest.Open(t)
	recreatedEnds(t, "group subscription", c, b, nil, func(c messaging.Client, topic string, h messaging.Handler) (messaging.Subscription, error) {
		return c.Subscribe(t.Context(), topic, h, messaging.Group("g"), messaging.Prefetch(1), messaging.Concurrency(1))
	})
}

// TestRecreatedStreamEndsRead: and a Read.
func TestRecreatedStreamEndsRead(t *testing.T) {
	c, b := natstest.Open(t), natstest.Open(t)
	recreatedEnds(t, "Read", c, b, nil, openRead(t))
}

// TestRecreatedStreamEndsReadAcrossReconnect: also when the Read's
// connection is down meanwhile; after the reconnect it creates its
// consumer again at once (the server told its pull nothing), on the new
// stream.
func TestRecreatedStreamEndsReadAcrossReconnect(t *testing.T) {
	srv, p, c := openProxied(t, 30*time.Second)
	b := natstest.OpenURL(t, srv.URL())
	recreatedEnds(t, "Read", c, b, &outage{cut: func() { cutAndWait(t, c, p) }, restore: p.Restore}, openRead(t))
}

func openRead(t *testing.T) func(c messaging.Client, topic string, h messaging.Handler) (messaging.Subscription, error) {
	return func(c messaging.Client, topic string, h messaging.Handler) (messaging.Subscription, error) {
		return c.(messaging.Stream).Read(t.Context(), topic, messaging.Earliest, h)
	}
}

// outage cuts the subscribing client's connection and restores it.
type outage struct{ cut, restore func() }

// recreatedEnds publishes 20 messages to a new topic, runs what (started
// by open on c) over them, and once its handler holds the last one,
// deletes the topic with client b, which then publishes 5 messages
// (recreating the stream), all during the outage o of c when o is not
// nil; then it lets the handler return, and checks that what ends with
// ErrTopicDeleted.
func recreatedEnds(t *testing.T, what string, c, b *natsadapter.Client, o *outage, open func(c messaging.Client, topic string, h messaging.Handler) (messaging.Subscription, error)) {
	topic := integration.UniqueName(t, "recreated")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.DeleteTopic(ctx, topic)
	})
	publishNumbered(t, c, topic, "old", 20)
	col := integration.NewCollector()
	held, release := make(chan struct{}), make(chan struct{})
	sub, err := open(c, topic, func(ctx context.Context, m *messaging.Message) error {
		col.Add(m)
		if m.ID == "old-19" {
			close(held)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the last old message not handled within 10s (%s)", what, col)
	}
	if o != nil {
		o.cut()
	}
	if err := b.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	publishNumbered(t, b, topic, "new", 5)
	if o != nil {
		o.restore()
	}
	close(release)
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after its topic was deleted and recreated (handled: %s)", what, col)
	}
	if err := sub.Err(); !errors.Is(err, messaging.ErrTopicDeleted) {
		t.Fatalf("%s ended with %v, want ErrTopicDeleted", what, err)
	}
}
