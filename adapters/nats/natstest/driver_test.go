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

// TestGroupConsumerRecreated: deleting a group's durable consumer under a
// live subscription (its stream stays) is a transient loss: the
// subscription creates the consumer again and keeps delivering, instead of
// ending or retrying forever.
func TestGroupConsumerRecreated(t *testing.T) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "lostcons")
	if err := c.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	got := make(chan string, 100)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	wait := func(id string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case g := <-got:
				if g == id {
					return
				}
			case <-deadline:
				t.Fatalf("message %s not delivered within 15s (subscription error: %v)", id, sub.Err())
			}
		}
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	wait("before")
	if err := c.JetStream().DeleteConsumer(t.Context(), c.StreamName(topic), c.ConsumerName(topic, "g")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	wait("after")
	select {
	case <-sub.Done():
		t.Fatalf("subscription ended: %v", sub.Err())
	default:
	}
}

// TestClosedConnectionEndsWithErrClosed: a connection closed under the
// Client (natstest.Kill) ends its subscriptions, and a Read, with an error
// wrapping messaging.ErrClosed, in both modes.
func TestClosedConnectionEndsWithErrClosed(t *testing.T) {
	nop := func(context.Context, *messaging.Message) error { return nil }
	for _, tc := range []struct {
		name string
		mode natsadapter.Mode
		open func(c *natsadapter.Client, topic string) (messaging.Subscription, error)
	}{
		{"jetstream group", natsadapter.ModeJetStream, func(c *natsadapter.Client, topic string) (messaging.Subscription, error) {
			return c.Subscribe(t.Context(), topic, nop, messaging.Group("g"))
		}},
		{"jetstream read", natsadapter.ModeJetStream, func(c *natsadapter.Client, topic string) (messaging.Subscription, error) {
			return c.Read(t.Context(), topic, messaging.Earliest, nop)
		}},
		{"core", natsadapter.ModeCore, func(c *natsadapter.Client, topic string) (messaging.Subscription, error) {
			return c.Subscribe(t.Context(), topic, nop)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := natstest.Open(t, natsadapter.WithMode(tc.mode))
			topic := integration.UniqueName(t, "connclosed")
			if tc.mode == natsadapter.ModeJetStream {
				cleaner := natstest.Open(t)
				if err := cleaner.Provision(t.Context(), topic); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cleaner.DeleteTopic(context.Background(), topic) })
			}
			sub, err := tc.open(c, topic)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Close() })
			natstest.Kill(t, c)
			select {
			case <-sub.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("subscription still running 10s after its connection closed")
			}
			if err := sub.Err(); !errors.Is(err, messaging.ErrClosed) {
				t.Fatalf("subscription ended with %v, want ErrClosed", err)
			}
		})
	}
}
