package pubsub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/patterns/pubsub"
)

type event struct {
	N int `json:"n"`
}

func topic(t *testing.T, c messaging.Client, prefix string) string {
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, name)
		}
	})
	return name
}

func TestEverySubscriberGetsEveryEvent(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		ctx := t.Context()
		tp := topic(t, c, "bus")
		pub, err := pubsub.NewPublisher[event](c, tp)
		if err != nil {
			t.Fatal(err)
		}
		subscribe := func(name string) *integration.Collector {
			col := integration.NewCollector()
			sub, err := pubsub.Subscribe(ctx, c, tp, integration.UniqueName(t, name), func(_ context.Context, e event, m *messaging.Message) error {
				if want := m.Header["n"]; want != fmt.Sprint(e.N) {
					t.Errorf("%s: decoded %d, header says %s", name, e.N, want)
				}
				col.Add(m)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Close() })
			return col
		}
		a, b := subscribe("a"), subscribe("b")
		var ids []string
		publish := func(from, to int) {
			for i := from; i < to; i++ {
				id, err := pub.Publish(ctx, "", event{N: i})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
		}
		// The header check above needs the header; publish through a
		// PublishFunc that adds it, proving any Publisher plugs in.
		pub, err = pubsub.NewPublisher[event](messaging.PublishFunc(func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
			for _, m := range msgs {
				var e event
				_ = jsonUnmarshal(m.Payload, &e)
				m.Header["n"] = fmt.Sprint(e.N)
			}
			return c.Publish(ctx, topic, msgs...)
		}), tp)
		if err != nil {
			t.Fatal(err)
		}
		publish(0, 10)
		a.WaitDistinct(t, 10, h.Timeout)
		b.WaitDistinct(t, 10, h.Timeout)
		a.Report(t, ids)
		b.Report(t, ids)

		// A third subscriber joins; the publisher is unchanged.
		late := subscribe("late")
		publish(10, 15)
		late.Wait(h.Timeout, func(c *integration.Collector) bool { return len(c.Missing(ids[10:])) == 0 })
		late.Report(t, ids[10:])
		a.WaitDistinct(t, 15, h.Timeout)
		b.WaitDistinct(t, 15, h.Timeout)
	})
}

func TestUndecodableEventIsNotRedelivered(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		ctx := t.Context()
		tp := topic(t, c, "bus-bad")
		calls := make(chan int, 10)
		sub, err := pubsub.Subscribe(ctx, c, tp, integration.UniqueName(t, "g"), func(_ context.Context, e event, _ *messaging.Message) error {
			calls <- e.N
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		if err := c.Publish(ctx, tp, &messaging.Message{Payload: []byte("not json")}); err != nil {
			t.Fatal(err)
		}
		pub, _ := pubsub.NewPublisher[event](c, tp)
		if _, err := pub.Publish(ctx, "", event{N: 7}); err != nil {
			t.Fatal(err)
		}
		// The good event arrives; the bad one never reaches the handler.
		select {
		case n := <-calls:
			if n != 7 {
				t.Fatalf("handler got %d, want 7", n)
			}
		case <-time.After(h.Timeout):
			t.Fatal("good event not delivered")
		}
		select {
		case n := <-calls:
			t.Fatalf("unexpected extra delivery %d", n)
		default:
		}
	})
}

func TestSubscribeRejectsBadArguments(t *testing.T) {
	h, _ := integration.LookupHarness("memory")
	c := h.Client(t)
	if _, err := pubsub.Subscribe[event](t.Context(), c, "t", "g", nil); err == nil {
		t.Error("nil handler accepted")
	}
	if _, err := pubsub.Subscribe(t.Context(), c, "t", "bad name", func(context.Context, event, *messaging.Message) error { return nil }); err == nil {
		t.Error("bad group name accepted")
	}
	if _, err := pubsub.NewPublisher[event](c, ""); err == nil {
		t.Error("empty topic accepted")
	}
}
