package pubsub_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/pubsub"
)

// received subscribes subscriber "s" to tp with opts and returns the
// messages its handler gets.
func received(t *testing.T, c messaging.Consumer, tp string, opts ...pubsub.Option) <-chan *messaging.Message {
	t.Helper()
	ch := make(chan *messaging.Message, 16)
	sub, err := pubsub.Subscribe(t.Context(), c, tp, "s", func(_ context.Context, _ event, m *messaging.Message) error {
		ch <- m
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return ch
}

func nextEvent(t *testing.T, ch <-chan *messaging.Message) *messaging.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return nil
	}
}

// TestPublishCarriesKeyAndID: the event goes out with the key given and
// the ID Publish returns.
func TestPublishCarriesKeyAndID(t *testing.T) {
	c := mwtest.Memory(t)
	tp := topic(t, c, "events")
	ch := received(t, c, tp)
	id, err := mwtest.Must(pubsub.NewPublisher[event](c, tp)).Publish(t.Context(), "k1", event{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m := nextEvent(t, ch); m.Key != "k1" || m.ID != id {
		t.Fatalf("event with key %q and ID %q, want k1 and %s", m.Key, m.ID, id)
	}
}
