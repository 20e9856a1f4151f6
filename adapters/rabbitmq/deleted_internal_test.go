package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
)

// TestReceiveHandsOverWhatPrecedesTopicDeleted: a group-less
// subscription that finds the topic-deleted message in the middle of the
// deliveries waiting returns those before it first (its handlers must
// have them: the exclusive queue goes with the subscription), then ends
// with ErrTopicDeleted; those after it are never returned.
func TestReceiveHandsOverWhatPrecedesTopicDeleted(t *testing.T) {
	rec := &methodRecorder{methods: map[uint64]string{}}
	cfg, err := newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.logger = slog.New(slog.DiscardHandler)
	in := make(chan amqp.Delivery, 8)
	tag := uint64(0)
	deliver := func(h amqp.Table, id string) {
		tag++
		in <- amqp.Delivery{Acknowledger: rec, DeliveryTag: tag, MessageId: id, Headers: h}
	}
	for i := range 3 {
		deliver(nil, fmt.Sprint("before-", i))
	}
	deliver(amqp.Table{hdrDeleted: "orders"}, "")
	deliver(nil, "after")
	r := &receiver{c: &Client{cfg: cfg}, topic: "orders", ch: &amqp.Channel{}, in: in, acks: newAcker(rec, 100, 0), cons: &consumer{ch: rec, tag: "ctag"}}

	ds, err := r.Receive(context.Background(), 10)
	if err != nil {
		t.Fatalf("first Receive: %v (returned %d deliveries), want the 3 before the topic-deleted message", err, len(ds))
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.Msg.ID)
	}
	if fmt.Sprint(ids) != "[before-0 before-1 before-2]" {
		t.Fatalf("first Receive returned %v, want [before-0 before-1 before-2]", ids)
	}
	ds, err = r.Receive(context.Background(), 10)
	if !errors.Is(err, messaging.ErrTopicDeleted) || len(ds) != 0 {
		t.Fatalf("second Receive: %d deliveries, %v; want none and ErrTopicDeleted", len(ds), err)
	}
}
