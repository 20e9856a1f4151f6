package rabbitmqtest_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestMismatchWarnedOnce: a group queue that Provision made (no delivery
// limit) meets each Subscribe with MaxAttempts as a queue with other
// arguments; the client warns once, not at every Subscribe, and again
// after the topic was deleted and made anew.
func TestMismatchWarnedOnce(t *testing.T) {
	warned := make(chan error, 10)
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t),
		rabbitmq.WithLogger(slog.New(logErrors{slog.DiscardHandler, "group queue exists with other arguments", warned})))
	topic, group := integration.UniqueName(t, "mismatch"), integration.UniqueName(t, "g")
	deleteAtEnd(t, c, topic)
	subscribeTimes := func(n int) {
		t.Helper()
		if err := c.Provision(t.Context(), topic, group); err != nil {
			t.Fatal(err)
		}
		for range n {
			sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil },
				messaging.Group(group), messaging.MaxAttempts(3))
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	subscribeTimes(3)
	if n := len(warned); n != 1 {
		t.Errorf("%d warnings for three Subscribes to one queue, want 1", n)
	}
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	subscribeTimes(1)
	if n := len(warned); n != 2 {
		t.Errorf("%d warnings after the topic was made anew, want 2", n)
	}
}
