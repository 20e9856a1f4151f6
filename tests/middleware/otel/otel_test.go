package otel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	mwotel "github.com/msgkit/messaging/middleware/otel"
)

func spans(rec *tracetest.SpanRecorder, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

// TestTraceCrossesBroker publishes through the tracing publisher (with
// Publish, and with PublishAsync, which passes through to the adapter's) and
// handles with the tracing middleware on every registered backend: the
// consumer span must be a child of the producer span, carried by the message
// headers.
func TestTraceCrossesBroker(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		t.Run("Publish", func(t *testing.T) { traceCrossesBroker(t, hn, false) })
		t.Run("PublishAsync", func(t *testing.T) { traceCrossesBroker(t, hn, true) })
	})
}

func traceCrossesBroker(t *testing.T, hn integration.Harness, async bool) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := hn.Client(t)
	ctx := mwtest.Context(t, 2*time.Minute)
	topic := mwtest.Topic(t, c, "otel")
	handled := make(chan trace.SpanContext, 1)
	h := mwtest.Must(mwotel.New(mwotel.WithTracerProvider(tp), mwotel.WithSystem(hn.Name)))(func(ctx context.Context, m *messaging.Message) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	})
	sub := mwtest.Subscribe(t, ctx, c, topic, h, messaging.Group(integration.UniqueName(t, "g")))
	pub := mwtest.Must(mwotel.Publisher(c, mwotel.WithTracerProvider(tp)))
	m := &messaging.Message{Payload: []byte("x"), Header: messaging.Header{"app": "1"}}
	if async {
		publishAsync(t, ctx, pub, topic, m)
	} else {
		mwtest.Publish(t, ctx, pub, topic, m)
	}
	if m.ID == "" && c.Capabilities().PublishAssignsID {
		t.Fatal("the caller's message did not get its ID")
	}
	if _, ok := m.Header["traceparent"]; ok {
		t.Fatal("the caller's header map was changed")
	}
	var inHandler trace.SpanContext
	select {
	case inHandler = <-handled:
	case <-ctx.Done():
		t.Fatal("not delivered")
	}
	prod := spans(rec, trace.SpanKindProducer)
	if len(prod) != 1 {
		t.Fatalf("%d producer spans, want 1", len(prod))
	}
	if inHandler.TraceID() != prod[0].SpanContext().TraceID() {
		t.Fatalf("handler trace %s, producer trace %s: context not propagated", inHandler.TraceID(), prod[0].SpanContext().TraceID())
	}
	_ = sub.Close() // waits for the handler, so the consumer span has ended
	cons := spans(rec, trace.SpanKindConsumer)
	if len(cons) != 1 || cons[0].Parent().SpanID() != prod[0].SpanContext().SpanID() {
		t.Fatalf("consumer spans %d; want one, child of the producer span", len(cons))
	}
}

// publishAsync publishes m with PublishAsync and waits for its result,
// which must be for m itself.
func publishAsync(t *testing.T, ctx context.Context, pub messaging.Publisher, topic string, m *messaging.Message) {
	t.Helper()
	ap, ok := pub.(messaging.AsyncPublisher)
	if !ok {
		t.Fatalf("%T is not a messaging.AsyncPublisher", pub)
	}
	result := make(chan error, 1)
	ap.PublishAsync(ctx, topic, m, func(got *messaging.Message, err error) {
		if got != m {
			err = errors.New("done called with another message than the caller's")
		}
		result <- err
	})
	if err := ap.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}

func TestHandlerErrorRecorded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := mwtest.Must(mwotel.New(mwotel.WithTracerProvider(tp)))(func(context.Context, *messaging.Message) error { return errors.New("boom") })
	if err := h(context.Background(), &messaging.Message{Topic: "t", Attempt: 2}); err == nil {
		t.Fatal("error swallowed")
	}
	s := rec.Ended()
	if len(s) != 1 || s[0].Status().Description != "boom" || s[0].Name() != "process t" {
		t.Fatalf("spans %v", s)
	}
}
