package otel_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/middleware/internal/mwtest"
	mwotel "github.com/msgkit/messaging/middleware/otel"
)

// TestTraceCrossesBrokerAsync: PublishAsync through the tracing publisher
// passes through to the adapter's PublishAsync with a producer span per
// message whose context reaches the handler; the caller's message gets its
// ID by the time done is called, and its header map is not changed.
func TestTraceCrossesBrokerAsync(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "otelasync")
		handled := make(chan trace.SpanContext, 1)
		h := mwotel.New(mwotel.WithTracerProvider(tp))(func(ctx context.Context, m *messaging.Message) error {
			handled <- trace.SpanContextFromContext(ctx)
			return nil
		})
		mwtest.Subscribe(t, ctx, c, topic, h, messaging.Group(integration.UniqueName(t, "g")))
		pub := mwotel.Publisher(c, mwotel.WithTracerProvider(tp)).(messaging.AsyncPublisher)
		m := &messaging.Message{Payload: []byte("x"), Header: messaging.Header{"app": "1"}}
		result := make(chan error, 1)
		pub.PublishAsync(ctx, topic, m, func(got *messaging.Message, err error) {
			if got != m || got.ID == "" {
				t.Errorf("done got %p with ID %q, want the caller's message %p with its ID", got, got.ID, m)
			}
			result <- err
		})
		if err := pub.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-result; err != nil {
			t.Fatal(err)
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
			t.Fatalf("%d producer spans ended, want 1", len(prod))
		}
		if inHandler.TraceID() != prod[0].SpanContext().TraceID() {
			t.Fatalf("handler trace %s, producer trace %s: context not propagated", inHandler.TraceID(), prod[0].SpanContext().TraceID())
		}
	})
}
