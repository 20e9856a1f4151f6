package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// The tests below use WithAckDelay(time.Hour): acknowledgements then go out
// only when a contiguous run of successes reaches the batch size (a quarter
// of the prefetch), when a nack cuts a run, or when the subscription closes,
// never on a timer, so the results do not depend on timing.

// deliveries records, per message ID, the attempts delivered and how many
// deliveries succeeded.
type deliveries struct {
	mu       sync.Mutex
	attempts map[string][]int
	ok       map[string]int
	changed  chan struct{}
}

func newDeliveries() *deliveries {
	return &deliveries{attempts: map[string][]int{}, ok: map[string]int{}, changed: make(chan struct{})}
}

// handler fails the first delivery of the messages fail selects.
func (d *deliveries) handler(fail func(id string) bool) messaging.Handler {
	return func(_ context.Context, m *messaging.Message) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.attempts[m.ID] = append(d.attempts[m.ID], m.Attempt)
		close(d.changed)
		d.changed = make(chan struct{})
		if fail != nil && fail(m.ID) && len(d.attempts[m.ID]) == 1 {
			return errors.New("first delivery fails")
		}
		d.ok[m.ID]++
		return nil
	}
}

// wait waits until cond holds (checked under the lock after each delivery).
func (d *deliveries) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		d.mu.Lock()
		done, changed := cond(), d.changed
		d.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func publishIDs(t *testing.T, c messaging.Publisher, topic, prefix string, n int) []string {
	t.Helper()
	msgs := make([]*messaging.Message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		msgs[i] = &messaging.Message{ID: ids[i], Payload: []byte(ids[i])}
	}
	if err := c.Publish(context.Background(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// expectNoRedelivery subscribes to group again and publishes markers one at a
// time: anything left unacknowledged in the queue (requeued when the previous
// subscription's channel closed) would be delivered before or between them.
func expectNoRedelivery(t *testing.T, c *rabbitmq.Client, topic, group string) {
	t.Helper()
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 3 {
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: fmt.Sprintf("marker-%d", i)}); err != nil {
			t.Fatal(err)
		}
		col.WaitDistinct(t, i+1, 30*time.Second)
	}
	for _, m := range col.Messages() {
		if !strings.HasPrefix(m.ID, "marker-") {
			t.Errorf("message %s (attempt %d) redelivered to the next subscriber: its ack was not sent", m.ID, m.Attempt)
		}
	}
}

// TestBatchedAcks: with batched acknowledgements and a handler that fails the
// first delivery of some messages, on four workers (out-of-order
// completion), every failed message is redelivered (a multiple ack never
// covers it) and every successful one is handled once and acknowledged
// once: nothing is redelivered to the next subscriber, including the last
// messages, whose acks were still waiting when Close was called (Close
// flushes them).
func TestBatchedAcks(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t), rabbitmq.WithAckDelay(time.Hour))
	topic, group := integration.UniqueName(t, "acks"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	const n = 300
	ids := publishIDs(t, c, topic, "m", n)
	failing := func(id string) bool {
		i, err := strconv.Atoi(strings.TrimPrefix(id, "m-"))
		return err == nil && i%7 == 3
	}
	d := newDeliveries()
	sub, err := c.Subscribe(t.Context(), topic, d.handler(failing), messaging.Group(group),
		messaging.Concurrency(4), messaging.Prefetch(100))
	if err != nil {
		t.Fatal(err)
	}
	d.wait(t, "every message to succeed", func() bool { return len(d.ok) == n })
	// A few more, fewer than a batch: their acks wait until Close.
	tail := publishIDs(t, c, topic, "tail", 5)
	d.wait(t, "the tail", func() bool { return len(d.ok) == n+len(tail) })
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, id := range append(ids, tail...) {
		want := 1
		if failing(id) {
			want = 2
			failed++
		}
		if got := d.attempts[id]; len(got) != want || d.ok[id] != 1 {
			t.Errorf("%s: delivered with attempts %v, succeeded %d times; want %d deliveries, 1 success", id, got, d.ok[id], want)
		}
	}
	if failed == 0 {
		t.Fatal("no message failed: the test proves nothing")
	}
	expectNoRedelivery(t, c, topic, group)
}

// TestBatchedAcksReconnect: acks waiting when the connection is lost are
// dropped, never sent on the next channel (where their delivery tags name
// other deliveries): the messages are redelivered after the reconnect, the
// subscription goes on, and their new acks are sent on the new channel.
func TestBatchedAcksReconnect(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := rabbitmq.New(conn, rabbitmq.WithAckDelay(time.Hour), rabbitmq.WithReconnectBackoff(50*time.Millisecond, time.Second),
		rabbitmq.WithRedial(func(context.Context) (*amqp.Connection, error) { return amqp.Dial(url) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // after DeleteTopic
	topic, group := integration.UniqueName(t, "acks"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	const n = 10 // fewer than a batch (prefetch 100 / 4)
	ids := publishIDs(t, c, topic, "m", n)
	d := newDeliveries()
	sub, err := c.Subscribe(t.Context(), topic, d.handler(nil), messaging.Group(group), messaging.Prefetch(100))
	if err != nil {
		t.Fatal(err)
	}
	d.wait(t, "every message to be handled", func() bool { return len(d.ok) == n })
	_ = conn.Close() // the client reconnects with WithRedial
	d.wait(t, "every message to be redelivered after the reconnect", func() bool {
		for _, id := range ids {
			if d.ok[id] < 2 {
				return false
			}
		}
		return true
	})
	select {
	case <-sub.Done():
		t.Fatalf("subscription ended: %v", sub.Err())
	default:
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if got := d.ok[id]; got != 2 {
			t.Errorf("%s handled %d times, want 2 (before and after the reconnect)", id, got)
		}
	}
	expectNoRedelivery(t, c, topic, group)
}
