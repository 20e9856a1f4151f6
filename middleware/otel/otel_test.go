package otel_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/otel"
)

// recorder returns a tracer provider whose ended spans rec holds.
func recorder(t *testing.T) (*tracetest.SpanRecorder, otel.Option) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, otel.WithTracerProvider(tp)
}

// TestHandlerPanicRecorded: a handler that panics fails its span, as the
// adapter fails the message (an error wrapping messaging.ErrHandlerPanic),
// instead of leaving a span that looks successful.
func TestHandlerPanicRecorded(t *testing.T) {
	rec, tp := recorder(t)
	h := mwtest.Must(otel.New(tp))(func(context.Context, *messaging.Message) error { panic("boom") })
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = errors.New("panic escaped")
			}
		}()
		return h(context.Background(), &messaging.Message{ID: "m1", Topic: "t", Attempt: 1})
	}()
	if !errors.Is(err, messaging.ErrHandlerPanic) {
		t.Errorf("handler result %v, want an error wrapping ErrHandlerPanic", err)
	}
	s := rec.Ended()
	if len(s) != 1 {
		t.Fatalf("%d spans ended, want 1", len(s))
	}
	if s[0].Status().Code != codes.Error || len(s[0].Events()) == 0 {
		t.Errorf("span status %v with %d events: the panic is not recorded", s[0].Status(), len(s[0].Events()))
	}
}
