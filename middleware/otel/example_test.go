package otel_test

import (
	"context"
	"errors"
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

// A BatchHandler (of SubscribeBatch) gets one consumer span per batch,
// linked to the producer span of each message; the failed messages are
// counted on it.
func ExampleNewBatch() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	mw, err := otel.NewBatch(otel.WithTracerProvider(tp))
	if err != nil {
		panic(err)
	}
	h := mw(func(ctx context.Context, msgs []*messaging.Message) []error {
		errs := make([]error, len(msgs))
		errs[1] = errors.New("out of stock")
		return errs
	})
	_ = h(context.Background(), []*messaging.Message{
		{ID: "m1", Topic: "orders", Attempt: 1},
		{ID: "m2", Topic: "orders", Attempt: 1},
		{ID: "m3", Topic: "orders", Attempt: 1},
	})
	for _, s := range rec.Ended() {
		fmt.Println(s.Name(), s.SpanKind(), s.Status().Code)
		for _, kv := range s.Attributes() {
			if kv.Key == otel.AttrBatchCount || kv.Key == otel.AttrBatchFailed {
				fmt.Println(kv.Key, kv.Value.String())
			}
		}
	}
	// Output:
	// process orders consumer Error
	// messaging.batch.message_count 3
	// messaging.batch.failed_message_count 1
}
