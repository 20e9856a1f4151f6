package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
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
