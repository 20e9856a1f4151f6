package otel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/otel"
)

// TestSpansAreValidUTF8: span names, attribute values, statuses and
// exception texts are valid UTF-8 even when a message ID (set by a
// producer that does not use this library), a topic given to Publish
// (which the publisher then rejects) or a handler's error holds bytes
// that are not: OTLP carries them as protobuf strings, and an
// exporter fails the whole batch of spans holding one.
func TestSpansAreValidUTF8(t *testing.T) {
	const bad = "x\xff\xfey"
	rec, tp := recorder(t)
	ctx := context.Background()
	pub := mwtest.Must(otel.Publisher(mwtest.Memory(t), tp))
	_ = pub.Publish(ctx, "topic"+bad, &messaging.Message{})
	if err := pub.Publish(ctx, "t", &messaging.Message{ID: "id" + bad}); err != nil {
		t.Fatal(err)
	}
	ap := pub.(messaging.AsyncPublisher)
	ap.PublishAsync(ctx, "t", &messaging.Message{ID: "async" + bad}, nil)
	if err := ap.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h := mwtest.Must(otel.New(tp))(func(context.Context, *messaging.Message) error { return errors.New("fails" + bad) })
	_ = h(ctx, &messaging.Message{ID: "m" + bad, Topic: "t" + bad, Group: "g" + bad, Attempt: 1})
	bh := mwtest.Must(otel.NewBatch(tp))(func(_ context.Context, msgs []*messaging.Message) []error {
		return []error{errors.New("fails" + bad), nil}
	})
	_ = bh(ctx, []*messaging.Message{
		{ID: "b1" + bad, Topic: "t" + bad, Group: "g" + bad, Attempt: 1},
		{ID: "b2" + bad, Topic: "t" + bad, Group: "g" + bad, Attempt: 1},
	})
	spans := rec.Ended()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 5", len(spans))
	}
	check := func(span, what string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			if kv.Value.Type() == attribute.STRING && !utf8.ValidString(kv.Value.AsString()) {
				t.Errorf("span %q: %s %s = %q is not valid UTF-8", span, what, kv.Key, kv.Value.AsString())
			}
		}
	}
	for _, s := range spans {
		if !utf8.ValidString(s.Name()) {
			t.Errorf("span name %q is not valid UTF-8", s.Name())
		}
		if d := s.Status().Description; !utf8.ValidString(d) {
			t.Errorf("span %q: status %q is not valid UTF-8", s.Name(), d)
		}
		check(s.Name(), "attribute", s.Attributes())
		for _, e := range s.Events() {
			check(s.Name(), "event "+e.Name+" attribute", e.Attributes)
			for _, kv := range e.Attributes {
				// The handlers' errors are errors.New's.
				if kv.Key == "exception.type" && strings.HasPrefix(s.Name(), "process") && kv.Value.AsString() != "*errors.errorString" {
					t.Errorf("span %q: exception.type %q, want *errors.errorString (the SDK's name of the error's type)", s.Name(), kv.Value.AsString())
				}
			}
		}
		for _, l := range s.Links() {
			check(s.Name(), "link attribute", l.Attributes)
		}
	}
}
