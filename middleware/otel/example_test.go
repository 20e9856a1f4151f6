package otel_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/otel"
)

// Each handled message gets a consumer span, a child of the producer's span
// when the publisher was wrapped with otel.Publisher (the trace context
// travels in the message headers).
func ExampleNew() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	mw, err := otel.New(otel.WithTracerProvider(tp), otel.WithSystem("mem"))
	if err != nil {
		panic(err)
	}
	h := mw(func(context.Context, *messaging.Message) error {
		return nil
	})
	_ = h(context.Background(), &messaging.Message{ID: "m1", Topic: "orders", Attempt: 1})
	for _, s := range rec.Ended() {
		fmt.Println(s.Name(), s.SpanKind())
	}
	// Output: process orders consumer
}
