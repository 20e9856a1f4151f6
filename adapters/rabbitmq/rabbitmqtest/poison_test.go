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
	"github.com/msgkit/messaging/integration"
)

// TestUndecodableMessageDoesNotStopTheQueue: messages another client
// published that amqp091-go cannot decode (9,000 headers, a table nested
// 40 deep) are given up (dead-lettered here) instead of dropping the
// consumer's connection at every delivery; a canary published after them
// reaches the subscription, and a client joining the group later.
func TestUndecodableMessageDoesNotStopTheQueue(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	dlx := integration.UniqueName(t, "dlx")
	c := rabbitmqtest.Open(t, url, rabbitmq.WithDeadLetterExchange(dlx))
	topic, group := integration.UniqueName(t, "poison"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}

	raw, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() }) // after the exchange's deletion below
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// A queue on the dead-letter exchange, to see the poison arrive there.
	if err := ch.ExchangeDeclare(dlx, "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(dlx, false, false) })
	dlq, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(dlq.Name, "#", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	many := amqp.Table{}
	for i := range 9000 {
		many[fmt.Sprintf("h%d", i)] = "v"
	}
	deep := amqp.Table{"leaf": "x"}
	for range 40 {
		deep = amqp.Table{"n": deep}
	}
	for _, p := range []amqp.Publishing{
		{MessageId: "many-headers", Headers: many, Body: []byte("poison 1")},
		{MessageId: "deep-headers", Headers: deep, Body: []byte("poison 2")},
	} {
		if err := ch.PublishWithContext(t.Context(), topic, "", false, false, p); err != nil {
			t.Fatal(err)
		}
	}

	sub := canaryReaches(t, c, c, topic, group)

	// Both poison messages were dead-lettered (counted on the broker: a
	// raw amqp091 consumer could not receive them either).
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(dlq.Name, false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter queue holds %d messages, want the 2 undecodable ones", q.Messages)
		}
		time.Sleep(50 * time.Millisecond) // polling the broker's count
	}
	_ = sub.Close()

	// A client joining the group later is not stuck either.
	canaryReaches(t, c, rabbitmqtest.Open(t, url), topic, group)
}

// TestGuardArraysAndFieldTypes: header arrays amqp091-go refuses (more
// than 8192 elements, nested 40 deep) are given up like the tables of
// TestUndecodableMessageDoesNotStopTheQueue instead of stopping the queue,
// while a message whose headers hold a value of every field type amqp091-go
// writes (decimal, timestamp, byte array, void...) is not taken for one it
// cannot decode: it reaches the handler, as does the canary after them.
func TestGuardArraysAndFieldTypes(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	c := rabbitmqtest.Open(t, url)
	topic, group := integration.UniqueName(t, "poison"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	_, ch := rawChannel(t, url)
	long := make([]any, 9000)
	for i := range long {
		long[i] = "v"
	}
	deep := []any{"leaf"}
	for range 40 {
		deep = []any{deep}
	}
	every := amqp.Table{
		"bool": true, "byte": byte(1), "int8": int8(-2), "int16": int16(-3), "int32": int32(-4), "int64": int64(-5),
		"uint16": uint16(6), "uint32": uint32(7), "float32": float32(8.5), "float64": 9.25,
		"decimal": amqp.Decimal{Scale: 2, Value: 1234}, "string": "s", "time": time.Unix(1700000000, 0),
		"bytes": []byte("b"), "void": nil, "table": amqp.Table{"decimal": amqp.Decimal{Scale: 1, Value: 5}, "n": int16(1)},
		"array": []any{int8(1), int16(2), uint16(3), amqp.Decimal{Scale: 3, Value: 7}, time.Unix(1, 0), []byte("x"), nil, float32(1), true},
	}
	for _, p := range []amqp.Publishing{
		{MessageId: "long-array", Headers: amqp.Table{"a": long}, Body: []byte("poison 1")},
		{MessageId: "deep-array", Headers: amqp.Table{"a": deep}, Body: []byte("poison 2")},
		{MessageId: "every-type", Headers: every, Body: []byte("fine")},
		{MessageId: "canary", Body: []byte("canary")},
	} {
		if err := ch.PublishWithContext(t.Context(), topic, "", false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	col.WaitDistinct(t, 2, 30*time.Second)
	if col.Count("every-type") != 1 || col.Count("canary") != 1 || col.Distinct() != 2 {
		t.Fatalf("delivered %s, want every-type and the canary", col)
	}
}

// TestUndecodableMessageDoesNotStopStreamRead: a message in a topic's
// stream that amqp091-go cannot decode (9,000 headers, published by
// another client) is skipped by Stream.Read with a log line naming its
// offset, never handed to the handler; the read goes on to the message
// after it, whose Offset is the next one. Before, the frame guard dropped
// the broker's x-stream-offset with the rest of the table and the read
// ended at that message ("delivery without x-stream-offset").
func TestUndecodableMessageDoesNotStopStreamRead(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	skipped := make(chan error, 4)
	c := rabbitmqtest.Open(t, url, rabbitmq.WithStreams(true),
		rabbitmq.WithLogger(slog.New(logErrors{slog.Default().Handler(), "rabbitmq: read skipped a message it cannot decode", skipped})))
	topic := integration.UniqueName(t, "poison-stream")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic); err != nil {
		t.Fatal(err)
	}

	_, ch := rawChannel(t, url)
	many := amqp.Table{}
	for i := range 9000 {
		many[fmt.Sprintf("h%d", i)] = "v"
	}
	// Confirmed before the canary is published (on another connection),
	// so the poison comes first in the stream, at offset 0.
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), topic, "", false, false,
		amqp.Publishing{MessageId: "many-headers", Headers: many, Body: []byte("poison")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := conf.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("raw publish not confirmed: %v", err)
	}
	canary := messaging.NewMessage([]byte("canary"))
	if err := c.Publish(t.Context(), topic, canary); err != nil {
		t.Fatal(err)
	}

	// Twice: a Read from the start again gets past the message too.
	for i := range 2 {
		got := make(chan *messaging.Message, 4)
		sub, err := c.Read(t.Context(), topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
			got <- m
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.ID != canary.ID || m.Offset != "1" {
				t.Fatalf("read %d: got %q at offset %s, want the canary %q at offset 1", i, m.ID, m.Offset, canary.ID)
			}
		case <-sub.Done():
			t.Fatalf("read %d ended before the canary: %v", i, sub.Err())
		case <-time.After(30 * time.Second):
			t.Fatalf("read %d: no canary in 30s", i)
		}
		select {
		case err := <-skipped:
			if err == nil || !strings.Contains(err.Error(), "more than 8192 entries") {
				t.Errorf("read %d: logged with error %v, want the reason (more than 8192 entries)", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("read %d: the undecodable message was not logged", i)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// canaryReaches subscribes consumer to the group, publishes a canary with
// pub and fails unless the canary, and nothing else, is delivered.
func canaryReaches(t *testing.T, pub, consumer messaging.Client, topic, group string) messaging.Subscription {
	t.Helper()
	col := integration.NewCollector()
	sub, err := consumer.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	canary := messaging.NewMessage([]byte("canary"))
	if err := pub.Publish(t.Context(), topic, canary); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)
	if col.Count(canary.ID) != 1 || col.Distinct() != 1 {
		t.Fatalf("delivered %s, want only the canary", col)
	}
	return sub
}

// TestReservedTopicNames: topics RabbitMQ reserves fail with ErrInvalidTopic
// before anything is sent.
func TestReservedTopicNames(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	noop := func(context.Context, *messaging.Message) error { return nil }
	if err := c.Publish(t.Context(), "amq.direct", messaging.NewMessage(nil)); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("Publish to amq.direct: %v", err)
	}
	if _, err := c.Subscribe(t.Context(), "amq.x", noop, messaging.Group("g")); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("Subscribe to amq.x: %v", err)
	}
	if err := c.Provision(t.Context(), "amq.y", "g"); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("Provision amq.y: %v", err)
	}
}

// TestHeaderFrameLimit: a message whose properties fill the negotiated
// frame_max (131072 bytes, RabbitMQ's default) exactly is published and
// delivered; one byte more fails with ErrMessageTooLarge before sending
// (the broker would close the connection).
func TestHeaderFrameLimit(t *testing.T) {
	const frameMax = 131072
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	topic, group := integration.UniqueName(t, "frame"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	msg := func(n int) *messaging.Message {
		m := &messaging.Message{ID: "frame-limit", Time: time.Unix(1_800_000_000, 5), Header: messaging.Header{"big": strings.Repeat("v", n)}}
		return m
	}
	frameSize := func(m *messaging.Message) int {
		n, err := rabbitmq.HeaderFrameSize(m)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := frameMax - frameSize(msg(0))
	if got := frameSize(msg(n)); got != frameMax {
		t.Fatalf("frame size %d, want %d", got, frameMax)
	}
	if err := c.Publish(t.Context(), topic, msg(n+1)); !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Fatalf("one byte over frame_max: %v, want ErrMessageTooLarge", err)
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	at := msg(n)
	if err := c.Publish(t.Context(), topic, at); err != nil {
		t.Fatalf("at frame_max: %v", err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)
	if got := col.Messages()[0]; got.Header["big"] != at.Header["big"] {
		t.Fatalf("header of %d bytes came back with %d", len(at.Header["big"]), len(got.Header["big"]))
	}
}
