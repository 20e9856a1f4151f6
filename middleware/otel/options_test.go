package otel_test

import (
	"context"
	"strings"
	"testing"

	global "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/otel"
)

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New, NewBatch and Publisher fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []otel.Option
	}{
		{"WithTracerProvider", []otel.Option{otel.WithTracerProvider(nil)}},
		{"WithPropagator", []otel.Option{otel.WithPropagator(nil)}},
		{"WithSystem", []otel.Option{otel.WithSystem("")}},
	} {
		for i, o := range tc.bad {
			mw, err := otel.New(o)
			if mw != nil {
				t.Errorf("%s #%d: New returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "otel", tc.name, err, tc.name)
			bmw, err := otel.NewBatch(o)
			if bmw != nil {
				t.Errorf("%s #%d: NewBatch returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "otel", tc.name, err, tc.name)
			p, err := otel.Publisher(mwtest.Memory(t), o)
			if p != nil {
				t.Errorf("%s #%d: Publisher returned a publisher with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "otel", tc.name, err, tc.name)
		}
	}
}

// TestConstructorsRejectInvalidArguments: Publisher rejects a nil
// publisher; valid options are accepted.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	_, err := otel.Publisher(nil)
	mwtest.WantInvalid(t, "otel", "Publisher(nil)", err, "Publisher", "publisher")
	opts := []otel.Option{otel.WithTracerProvider(sdktrace.NewTracerProvider()), otel.WithPropagator(propagation.TraceContext{}), otel.WithSystem("nats"), nil}
	if _, err := otel.New(opts...); err != nil {
		t.Error(err)
	}
	if _, err := otel.NewBatch(opts...); err != nil {
		t.Error(err)
	}
	if _, err := otel.Publisher(mwtest.Memory(t), opts...); err != nil {
		t.Error(err)
	}
}

// prefixed is the W3C Trace Context propagator writing its headers under
// other names ("x-traceparent"), as an application's own propagator would.
type prefixed struct{}

type prefixCarrier struct{ c propagation.TextMapCarrier }

func (p prefixCarrier) Get(k string) string { return p.c.Get("x-" + k) }
func (p prefixCarrier) Set(k, v string)     { p.c.Set("x-"+k, v) }
func (p prefixCarrier) Keys() []string      { return nil }

func (prefixed) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	propagation.TraceContext{}.Inject(ctx, prefixCarrier{c})
}

func (prefixed) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return propagation.TraceContext{}.Extract(ctx, prefixCarrier{c})
}

func (prefixed) Fields() []string { return []string{"x-traceparent", "x-tracestate"} }

// TestWithPropagator: the configured propagator writes the context
// (replacing its own fields in a forwarded message's headers) and New and
// NewBatch read it from there.
func TestWithPropagator(t *testing.T) {
	rec, tp := recorder(t)
	ctx := context.Background()
	prop := otel.WithPropagator(prefixed{})
	var c capture
	pub := mwtest.Must(otel.Publisher(&c, tp, prop))
	forwarded := messaging.Header{"x-tracestate": "vendor=old", "app": "1"}
	if err := pub.Publish(ctx, "t", &messaging.Message{Header: forwarded}); err != nil {
		t.Fatal(err)
	}
	producer := rec.Ended()[0].SpanContext()
	h := c.headers[0]
	if want := "00-" + producer.TraceID().String() + "-" + producer.SpanID().String() + "-01"; h["x-traceparent"] != want {
		t.Errorf("headers %v, want x-traceparent %q", h, want)
	}
	if v, ok := h["x-tracestate"]; ok || h["app"] != "1" {
		t.Errorf("headers %v: x-tracestate %q left from the trace the message came from, or app lost", h, v)
	}
	msg := &messaging.Message{ID: "m", Topic: "t", Attempt: 1, Header: h}
	_ = mwtest.Must(otel.New(tp, prop))(func(context.Context, *messaging.Message) error { return nil })(ctx, msg)
	_ = mwtest.Must(otel.NewBatch(tp, prop))(func(context.Context, []*messaging.Message) []error { return nil })(ctx, []*messaging.Message{msg})
	spans := processSpans(rec.Ended())
	if len(spans) != 2 {
		t.Fatalf("%d consumer spans, want 2", len(spans))
	}
	if p := spans[0].Parent(); p.TraceID() != producer.TraceID() || p.SpanID() != producer.SpanID() {
		t.Errorf("New's span has parent %v, want the producer span %v", p, producer)
	}
	if l := spans[1].Links(); len(l) != 1 || l[0].SpanContext.SpanID() != producer.SpanID() {
		t.Errorf("NewBatch's span links %v, want one to the producer span %v", l, producer)
	}
}

// TestDefaultTracerProviderIsGlobal: without WithTracerProvider, New,
// NewBatch and Publisher start their spans with the global provider set
// before they are called.
func TestDefaultTracerProviderIsGlobal(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	old := global.GetTracerProvider()
	global.SetTracerProvider(tp)
	t.Cleanup(func() { global.SetTracerProvider(old) })
	ctx := context.Background()
	if err := mwtest.Must(otel.Publisher(mwtest.Memory(t))).Publish(ctx, "t", &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	_ = mwtest.Must(otel.New())(func(context.Context, *messaging.Message) error { return nil })(ctx, &messaging.Message{ID: "1", Topic: "t", Attempt: 1})
	_ = mwtest.Must(otel.NewBatch())(func(context.Context, []*messaging.Message) []error { return nil })(ctx, []*messaging.Message{{ID: "2", Topic: "b", Attempt: 1}})
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	if strings.Join(names, ",") != "send t,process t,process b" {
		t.Errorf("spans of the global provider %q, want send t, process t and process b", names)
	}
}
