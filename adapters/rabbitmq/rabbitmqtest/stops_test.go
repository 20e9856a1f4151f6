package rabbitmqtest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestStopsLoseNothing: a group subscribed with MaxAttempts(1) is stopped
// again and again mid-stream, as in a rolling restart: first while it
// holds 2,000 messages unhandled (all given back), then three times while
// it acknowledges messages as fast as they come. A last subscription must
// get every message. On RabbitMQ 3.10 a queue declared with
// x-delivery-limit = MaxAttempts dropped 24-50 of 3,000 messages a stop
// here: those on their way from the queue to the channel at a consumer's
// cancel or close go back counted, and past the limit, unseen by the
// client.
func TestStopsLoseNothing(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	topic, group := integration.UniqueName(t, "stops"), integration.UniqueName(t, "g")
	deleteAtEnd(t, c, topic)
	const n, held, handledPerStop = 3000, 2000, 300
	opts := []messaging.SubscribeOption{messaging.Group(group), messaging.MaxAttempts(1)}
	// The group's queue as Subscribe makes it.
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{Payload: fmt.Appendf(nil, "%d", i)}
	}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}

	// Held: the handler waits for its context; once the broker has sent
	// the subscription held messages, it is stopped.
	ctx, cancel := context.WithCancel(t.Context())
	sub, err = c.Subscribe(ctx, topic, func(ctx context.Context, _ *messaging.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}, append(opts, messaging.Prefetch(held), messaging.Concurrency(1))...)
	if err != nil {
		t.Fatal(err)
	}
	integration.Eventually(t, 30*time.Second, func() error {
		st, err := c.Inspect(t.Context(), topic)
		if err != nil {
			return err
		}
		if backlog, _ := st.Groups[0].Backlog.Value(); backlog > n-held {
			return fmt.Errorf("backlog %d, want %d", backlog, n-held)
		}
		return nil
	})
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	col := integration.NewCollector()
	collect := col.Handler()
	for stop := 1; stop <= 3; stop++ {
		var handled atomic.Int64
		enough := make(chan struct{})
		sub, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
			if err := collect(ctx, m); err != nil {
				return err
			}
			if handled.Add(1) == handledPerStop {
				close(enough)
			}
			return nil
		}, append(opts, messaging.Prefetch(50))...)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-enough:
		case <-time.After(30 * time.Second):
			t.Fatalf("stop %d: %d messages handled in 30s", stop, handled.Load())
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("stop %d: %v", stop, err)
		}
	}

	sub, err = c.Subscribe(t.Context(), topic, collect, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !col.Wait(30*time.Second, func(c *integration.Collector) bool { return c.Distinct() == n }) {
		t.Fatalf("after four stops, %d of %d messages delivered", col.Distinct(), n)
	}
	if d := col.Duplicates(); d > 0 {
		t.Logf("%d duplicates (at-least-once)", d)
	}
}
