package rabbitmqtest_test

import (
	"context"
	"log/slog"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestMismatchWarnedOnce: a group queue that another client made without
// a dead-letter exchange meets each Subscribe of a client with one as a
// queue with other arguments; that client warns once, not at every
// Subscribe, and again after the topic was deleted and made anew.
func TestMismatchWarnedOnce(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	warned := make(chan error, 10)
	dlx := integration.UniqueName(t, "dlx")
	p := rabbitmqtest.Open(t, url)
	c := rabbitmqtest.Open(t, url, rabbitmq.WithDeadLetterExchange(dlx),
		rabbitmq.WithLogger(slog.New(logErrors{slog.DiscardHandler, "group queue exists with other arguments", warned})))
	topic, group := integration.UniqueName(t, "mismatch"), integration.UniqueName(t, "g")
	deleteAtEnd(t, c, topic)
	t.Cleanup(func() { deleteExchange(t, url, dlx) })
	subscribeTimes := func(n int) {
		t.Helper()
		if err := p.Provision(t.Context(), topic, group); err != nil {
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

// deleteExchange deletes the exchange name (one the client declared for
// dead letters) with a raw connection.
func deleteExchange(t *testing.T, url, name string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDelete(name, false, false)
	}
	if err != nil {
		t.Errorf("cleanup: delete exchange %s: %v", name, err)
	}
}
