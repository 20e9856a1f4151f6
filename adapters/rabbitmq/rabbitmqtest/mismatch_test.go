package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/dlheader"
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

// TestMismatchDeadLetters: a group queue that exists without a
// dead-letter exchange (declared by another client, or before the option
// was set) is used as it is by a client WithDeadLetterExchange; the
// messages it gives up (a Permanent error) still reach that exchange, as
// the option promises, published there by the client with the headers of
// package dlheader (the queue cannot dead-letter them: basic.nack without
// requeue would make the broker drop them), and the warning says so.
// Before, the broker discarded them.
func TestMismatchDeadLetters(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	dlx := integration.UniqueName(t, "dlx")
	warned := make(chan string, 10)
	c := rabbitmqtest.Open(t, url, rabbitmq.WithDeadLetterExchange(dlx),
		rabbitmq.WithLogger(slog.New(logMessages{slog.Default().Handler(), "group queue exists with other arguments", warned})))
	topic, group := integration.UniqueName(t, "mismatch-dl"), integration.UniqueName(t, "g")
	deleteAtEnd(t, c, topic)

	raw, ch := rawChannel(t, url)
	// The group's queue as a client without the option declares it.
	if _, err := ch.QueueDeclare(topic+"~"+group, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(topic+"~"+group, false, false, false) // if the client did not
		}
	})
	dead := deadLetters(t, ch, url, dlx)

	handled := make(chan string, 10)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		handled <- m.ID
		return messaging.Permanent(errors.New("cannot decode"))
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case w := <-warned:
		if !strings.Contains(w, "dead-letter exchange") {
			t.Errorf("the warning does not say how given-up messages are dead-lettered: %s", w)
		}
	default:
		t.Error("no warning that the group queue exists with other arguments")
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "poison", Key: "k1", Payload: []byte("p"), Header: messaging.Header{"h": "1"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-dead:
		if d.MessageId != "poison" || string(d.Body) != "p" || d.Headers["h"] != "1" {
			t.Errorf("dead letter: id %q body %q headers %v", d.MessageId, d.Body, d.Headers)
		}
		if !strings.Contains(fmt.Sprint(d.Headers[dlheader.HeaderReason]), "cannot decode") || d.Headers[dlheader.HeaderTopic] != topic ||
			d.Headers[dlheader.HeaderGroup] != group || d.Headers[dlheader.HeaderID] != "poison" || d.Headers[dlheader.HeaderAttempts] != "1" {
			t.Errorf("dead letter without the dlheader envelope: %v", d.Headers)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the given-up message did not reach the dead-letter exchange in 30s (handled: %d times)", len(handled))
	}
	if n := len(handled); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
	// Nothing is left in the group's queue: it was acknowledged.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if q := unconsumed(t, ch, topic+"~"+group); q.Messages != 0 {
		t.Errorf("group queue holds %d messages after the dead-lettering, want 0", q.Messages)
	}
}

// logMessages is a slog.Handler that passes records on to next and sends
// the message of each record whose message contains msg to msgs (dropped
// when full).
type logMessages struct {
	next slog.Handler
	msg  string
	msgs chan<- string
}

func (h logMessages) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (h logMessages) WithAttrs(as []slog.Attr) slog.Handler {
	return logMessages{h.next.WithAttrs(as), h.msg, h.msgs}
}
func (h logMessages) WithGroup(g string) slog.Handler {
	return logMessages{h.next.WithGroup(g), h.msg, h.msgs}
}

func (h logMessages) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		select {
		case h.msgs <- r.Message:
		default:
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// TestMismatchLimitDL: a group queue that exists with the client's
// dead-letter exchange and a delivery limit the client does not declare
// (as an earlier version of this package declared it) is found to
// dead-letter into that exchange: the broker dead-letters what the client
// gives up, with x-death, and the client publishes no copy of its own.
func TestMismatchLimitDL(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	// Short names: the broker's refusal, which names the queue, must not
	// be cut at 255 bytes before it tells the queue's limit.
	dlx := integration.UniqueName(t, "x")
	warned := make(chan string, 10)
	c := rabbitmqtest.Open(t, url, rabbitmq.WithDeadLetterExchange(dlx),
		rabbitmq.WithLogger(slog.New(logMessages{slog.Default().Handler(), "group queue exists with other arguments", warned})))
	topic, group := integration.UniqueName(t, "t"), integration.UniqueName(t, "g")
	queue := topic + "~" + group
	deleteAtEnd(t, c, topic)

	raw, ch := rawChannel(t, url)
	limit := int64(7) // the client declares none (before 4.3) or MaxAttempts(2)
	if _, err := ch.QueueDeclare(queue, true, false, false, false,
		amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": limit, "x-dead-letter-exchange": dlx}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(queue, false, false, false)
		}
	})
	dead := deadLetters(t, ch, url, dlx)

	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		return messaging.Permanent(errors.New("cannot decode"))
	}, messaging.Group(group), messaging.MaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case w := <-warned:
		if strings.Contains(w, "dead-letter exchange") {
			t.Errorf("warned that the queue may not dead-letter into the client's exchange: %s", w)
		}
	default:
		t.Error("no warning that the group queue exists with other arguments")
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "poison", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-dead:
		if d.MessageId != "poison" {
			t.Errorf("dead letter %q, want poison", d.MessageId)
		}
		if _, ok := d.Headers["x-death"]; !ok {
			t.Errorf("dead letter without x-death (not dead-lettered by the broker): %v", d.Headers)
		}
		if _, ok := d.Headers[dlheader.HeaderReason]; ok {
			t.Errorf("dead letter published by the client: %v", d.Headers)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the given-up message did not reach the dead-letter exchange in 30s")
	}
	select {
	case d := <-dead:
		t.Errorf("a second dead letter: %q %v", d.MessageId, d.Headers)
	case <-time.After(time.Second): // a copy would follow the nack at once
	}
}

// deadLetters declares the fanout exchange dlx on ch (deleted at the end)
// and returns what reaches it, through an exclusive queue bound to it.
func deadLetters(t *testing.T, ch *amqp.Channel, url, dlx string) <-chan amqp.Delivery {
	t.Helper()
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteExchange(t, url, dlx) })
	dlq, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(dlq.Name, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	dead, err := ch.Consume(dlq.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dead
}
