// Package otel traces publishing and handling with OpenTelemetry and carries
// the W3C trace context through message headers, so a trace continues from
// the publisher to the handler across any broker.
//
// Publisher wraps a Publisher: each Publish call gets a producer span, and
// every message gets that span's context in its headers ("traceparent",
// "tracestate", and "baggage" with the default propagator), replacing those
// a message already holds (one consumed and published again). New wraps a
// handler: it extracts the context from the message headers and runs the
// handler in a consumer span that is its child, with the topic, group,
// message ID and attempt as attributes and the handler's error recorded. A
// panic in the handler is recovered and recorded as an error wrapping
// messaging.ErrHandlerPanic, which New returns, as adapters treat a panic.
// NewBatch wraps a BatchHandler: one consumer span per batch, linked to the
// producer span of each message.
//
// Span names, attribute values, status descriptions and exception texts
// are valid UTF-8, as OTLP requires: bytes that are not (in a message ID
// set by another producer, a topic that Publish then rejects, an error
// that quotes either) become U+FFFD.
//
// Put New outermost, so the span covers the other layers and the logs and
// metrics they emit can be correlated.
package otel

import (
	"context"
	"fmt"
	"reflect"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/utf8text"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// ScopeName is the instrumentation scope of the tracer.
const ScopeName = "github.com/msgkit/messaging/middleware/otel"

// Attribute keys, from the OpenTelemetry messaging semantic conventions but
// AttrAttempt, which they do not define (they have delivery attempts for
// single systems only, such as messaging.gcp_pubsub.message.delivery_attempt).
// AttrGroup is set for messages delivered to a group, AttrBatchCount for
// Publish calls of other than one message, AttrErrorType on the span of an
// operation that failed (see ErrorType). AttrOperation and AttrOperationName
// are both "send" for publishing and "process" for handling: the library's
// operations are the same on every broker.
const (
	AttrSystem        = attribute.Key("messaging.system")
	AttrDestination   = attribute.Key("messaging.destination.name")
	AttrMessageID     = attribute.Key("messaging.message.id")
	AttrGroup         = attribute.Key("messaging.consumer.group.name")
	AttrOperation     = attribute.Key("messaging.operation.type")
	AttrOperationName = attribute.Key("messaging.operation.name")
	AttrBatchCount    = attribute.Key("messaging.batch.message_count")
	AttrAttempt       = attribute.Key("messaging.message.delivery_attempt")
	AttrErrorType     = attribute.Key("error.type")
)

// Option configures New, NewBatch and Publisher. An Option given an invalid
// value makes them fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type Option func(*config) error

type config struct {
	tp     trace.TracerProvider
	prop   propagation.TextMapPropagator
	system string
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("otel: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithTracerProvider sets the tracer provider (default the global one,
// otel.GetTracerProvider(), looked up when New, NewBatch or Publisher is
// called). A
// nil tp is invalid.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return invalid("WithTracerProvider", "nil", "needs a tracer provider")
		}
		c.tp = tp
		return nil
	}
}

// WithPropagator sets how the context is written to and read from headers
// (default W3C Trace Context and Baggage, whatever the global propagator is,
// so that traces cross brokers without global setup). A nil p is invalid.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return invalid("WithPropagator", "nil", "needs a propagator")
		}
		c.prop = p
		return nil
	}
}

// WithSystem sets the messaging.system attribute ("nats", "kafka", ...; by
// default the attribute is not set). s must not be empty.
func WithSystem(s string) Option {
	return func(c *config) error {
		if s == "" {
			return invalid("WithSystem", `""`, "must not be empty")
		}
		c.system = s
		return nil
	}
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (config, error) {
	c := config{}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.prop == nil {
		c.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return c, nil
}

// recordError records err on span as span.RecordError does (an exception
// event with the error's type and text, and kv), with the text made valid
// UTF-8: a handler's error may quote a message's ID or payload.
func recordError(span trace.Span, err error, kv ...attribute.KeyValue) {
	text := err.Error()
	if utf8.ValidString(text) {
		span.RecordError(err, trace.WithAttributes(kv...))
		return
	}
	span.AddEvent("exception", trace.WithAttributes(append([]attribute.KeyValue{
		attribute.String("exception.type", typeName(err)),
		attribute.String("exception.message", utf8text.Valid(text)),
	}, kv...)...))
}

// typeName is the exception.type the OpenTelemetry SDK gives err.
func typeName(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

func (c *config) attrs(kv ...attribute.KeyValue) []attribute.KeyValue {
	if c.system != "" {
		kv = append(kv, AttrSystem.String(c.system))
	}
	return kv
}

// New returns the tracing middleware for handlers. It applies opts in order
// and returns the first error.
func New(opts ...Option) (messaging.Middleware, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	tracer := c.tp.Tracer(ScopeName)
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Tracing})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			ctx = c.prop.Extract(ctx, propagation.MapCarrier(msg.Header))
			topic := utf8text.Valid(msg.Topic)
			kv := []attribute.KeyValue{
				AttrOperation.String("process"),
				AttrOperationName.String("process"),
				AttrDestination.String(topic),
				AttrMessageID.String(utf8text.Valid(msg.ID)),
				AttrAttempt.Int(msg.Attempt),
			}
			if msg.Group != "" {
				kv = append(kv, AttrGroup.String(utf8text.Valid(msg.Group)))
			}
			ctx, span := tracer.Start(ctx, "process "+topic,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(c.attrs(kv...)...))
			defer span.End()
			ctx, report := layer.WithReport(ctx)
			err := layer.Call(ctx, next, msg)
			if report.DeadLetterTopic != "" {
				span.SetAttributes(attribute.String("messaging.dead_letter.destination", report.DeadLetterTopic))
			}
			if err != nil {
				failed(span, err)
			}
			return err
		}
	}, nil
}

// Publisher returns p with tracing: a producer span per Publish call, and the
// span's context written into each message's headers. The caller's messages
// are not changed except for ID and Time, which p fills as usual: the
// headers are written to copies. p's error is returned unchanged. Close
// returns nil and does not close p, which the caller owns. A nil p is
// rejected with an error wrapping messaging.ErrInvalidOption; opts are
// applied in order and the first error is returned.
func Publisher(p messaging.Publisher, opts ...Option) (messaging.Publisher, error) {
	if p == nil {
		return nil, fmt.Errorf("otel: Publisher: nil publisher: %w", messaging.ErrInvalidOption)
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &publisher{p: p, c: c, tracer: c.tp.Tracer(ScopeName), fields: c.prop.Fields()}, nil
}

type publisher struct {
	p      messaging.Publisher
	c      config
	tracer trace.Tracer
	fields []string // the headers the propagator writes
}

func (t *publisher) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	ctx, span := t.startSend(ctx, topic, len(msgs))
	defer span.End()
	copies := make([]*messaging.Message, len(msgs))
	for i, m := range msgs {
		if m == nil {
			continue // the publisher reports it
		}
		cp := *m
		cp.Header = t.headers(ctx, m.Header)
		copies[i] = &cp
	}
	err := t.p.Publish(ctx, topic, copies...)
	for i, m := range msgs {
		if m != nil {
			m.ID, m.Time = copies[i].ID, copies[i].Time
		}
	}
	if len(msgs) == 1 && msgs[0] != nil {
		span.SetAttributes(AttrMessageID.String(utf8text.Valid(msgs[0].ID)))
	}
	if err != nil {
		failed(span, err)
	}
	return err
}

// headers returns a copy of h carrying the context of ctx: the fields of
// the propagator (traceparent, tracestate, baggage) that h holds, from the
// context it was consumed in, are replaced by those of ctx, none kept
// alongside.
func (t *publisher) headers(ctx context.Context, h messaging.Header) messaging.Header {
	out := make(messaging.Header, len(h)+2)
	for k, v := range h {
		out[k] = v
	}
	for _, f := range t.fields {
		delete(out, f)
	}
	t.c.prop.Inject(ctx, propagation.MapCarrier(out))
	return out
}

// startSend starts the producer span of a send of n messages to topic.
// messaging.batch.message_count is left out for a single message, as the
// semantic conventions ask.
func (t *publisher) startSend(ctx context.Context, topic string, n int) (context.Context, trace.Span) {
	topic = utf8text.Valid(topic)
	kv := []attribute.KeyValue{AttrOperation.String("send"), AttrOperationName.String("send"), AttrDestination.String(topic)}
	if n != 1 {
		kv = append(kv, AttrBatchCount.Int(n))
	}
	return t.tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(t.c.attrs(kv...)...))
}

// failed records err on span: an exception event, the status, and the
// error.type attribute.
func failed(span trace.Span, err error) {
	recordError(span, err)
	span.SetStatus(codes.Error, utf8text.Valid(err.Error()))
	span.SetAttributes(AttrErrorType.String(ErrorType(err)))
}

// Close returns nil; it does not close the wrapped Publisher.
func (t *publisher) Close() error { return nil }
