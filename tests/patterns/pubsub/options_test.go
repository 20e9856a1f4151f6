package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/codec"
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

// hashed is JSON behind a '#', to tell it from plain JSON.
type hashed struct{}

func (hashed) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append([]byte("#"), b...), err
}

func (hashed) Unmarshal(data []byte, v any) error {
	if len(data) == 0 || data[0] != '#' {
		return messaging.Permanent(errNotHashed)
	}
	return json.Unmarshal(data[1:], v)
}

func (hashed) ContentType() string { return "application/x-hashed" }

var errNotHashed = errors.New("not hashed")

// TestWithCodecOnBothSides: WithCodec encodes the publisher's events and
// decodes the subscriber's.
func TestWithCodecOnBothSides(t *testing.T) {
	c := mwtest.Memory(t)
	tp := topic(t, c, "events")
	var got event
	ch := make(chan *messaging.Message, 1)
	sub, err := pubsub.Subscribe(t.Context(), c, tp, "s", func(_ context.Context, e event, m *messaging.Message) error {
		got = e
		ch <- m
		return nil
	}, pubsub.WithCodec(hashed{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := mwtest.Must(pubsub.NewPublisher[event](c, tp, pubsub.WithCodec(hashed{}))).Publish(t.Context(), "", event{N: 7}); err != nil {
		t.Fatal(err)
	}
	if m := nextEvent(t, ch); m.Header[codec.HeaderContentType] != "application/x-hashed" || got.N != 7 {
		t.Fatalf("event %+v with content type %q, want N 7 in application/x-hashed", got, m.Header[codec.HeaderContentType])
	}
}

// TestWithMiddlewareWrapsSubscriber: WithMiddleware's middleware wraps the
// subscriber's handler.
func TestWithMiddlewareWrapsSubscriber(t *testing.T) {
	c := mwtest.Memory(t)
	tp := topic(t, c, "events")
	seen := make(chan string, 1)
	mw := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			seen <- m.ID
			return next(ctx, m)
		}
	}
	ch := received(t, c, tp, pubsub.WithMiddleware(mw))
	id, err := mwtest.Must(pubsub.NewPublisher[event](c, tp)).Publish(t.Context(), "", event{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch)
	select {
	case got := <-seen:
		if got != id {
			t.Fatalf("middleware saw %s, want %s", got, id)
		}
	default:
		t.Fatal("the middleware did not see the event")
	}
}

// TestSubscribeOptionsReachTheSubscription: WithSubscribeOptions's options
// reach the subscription (here StartAt(Latest): an event published before
// the subscriber's group existed is not delivered, the next one is, and in
// the topic's order it would have come first), and Publisher.Topic is the
// topic published to.
func TestSubscribeOptionsReachTheSubscription(t *testing.T) {
	c := mwtest.Memory(t)
	tp := topic(t, c, "events")
	p := mwtest.Must(pubsub.NewPublisher[event](c, tp))
	if p.Topic() != tp {
		t.Errorf("Publisher.Topic() = %q, want %q", p.Topic(), tp)
	}
	if _, err := p.Publish(t.Context(), "", event{N: 1}); err != nil {
		t.Fatal(err)
	}
	ch := received(t, c, tp, pubsub.WithSubscribeOptions(messaging.StartAt(messaging.Latest)))
	id, err := p.Publish(t.Context(), "", event{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if m := nextEvent(t, ch); m.ID != id {
		t.Fatalf("first event delivered %s (%s), want the one published after Subscribe, %s: StartAt(Latest) was not applied", m.ID, m.Payload, id)
	}
}
