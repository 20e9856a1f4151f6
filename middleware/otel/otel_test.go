package otel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/deadletter"
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

// attrs returns the attributes of span s by key.
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// TestSemanticConventionAttributes: messaging.batch.message_count is set on
// spans of batches only (the conventions: instrumentations SHOULD NOT set
// it on spans that operate with a single message), and the consumer group
// only for messages delivered to a group.
func TestSemanticConventionAttributes(t *testing.T) {
	rec, tp := recorder(t)
	pub := mwtest.Must(otel.Publisher(mwtest.Memory(t), tp))
	ctx := context.Background()
	if err := pub.Publish(ctx, "one", &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "two", &messaging.Message{}, &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	pub.(messaging.AsyncPublisher).PublishAsync(ctx, "async", &messaging.Message{}, nil)
	if err := pub.(messaging.AsyncPublisher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h := mwtest.Must(otel.New(tp))(func(context.Context, *messaging.Message) error { return nil })
	_ = h(ctx, &messaging.Message{ID: "m1", Topic: "read", Attempt: 1})
	_ = h(ctx, &messaging.Message{ID: "m2", Topic: "grouped", Group: "g", Attempt: 1})
	want := map[string]map[string]string{ // span name -> attribute -> value ("-" for absent)
		"send one":        {"messaging.batch.message_count": "-", "messaging.operation.name": "send", "messaging.operation.type": "send", "error.type": "-"},
		"send two":        {"messaging.batch.message_count": "2", "messaging.operation.name": "send"},
		"send async":      {"messaging.batch.message_count": "-", "messaging.operation.name": "send"},
		"process read":    {"messaging.consumer.group.name": "-", "messaging.operation.name": "process", "messaging.operation.type": "process", "error.type": "-"},
		"process grouped": {"messaging.consumer.group.name": "g", "messaging.operation.name": "process"},
	}
	wantAttrs(t, rec.Ended(), want)
}

// wantAttrs checks that spans are those of want, by name, with the
// attributes want gives them ("-" for an absent one).
func wantAttrs(t *testing.T, spans []sdktrace.ReadOnlySpan, want map[string]map[string]string) {
	t.Helper()
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for _, s := range spans {
		got := attrs(s)
		for k, v := range want[s.Name()] {
			g, ok := got[k]
			if !ok {
				g = "-"
			}
			if g != v {
				t.Errorf("span %q: %s = %q, want %q", s.Name(), k, g, v)
			}
		}
	}
}

// capture is a publisher that keeps the headers of what it is given.
type capture struct{ headers []messaging.Header }

func (c *capture) Publish(_ context.Context, _ string, msgs ...*messaging.Message) error {
	for _, m := range msgs {
		c.headers = append(c.headers, m.Header)
	}
	return nil
}

func (c *capture) Close() error { return nil }

// TestForwardedMessageCarriesOnlyTheNewContext: a message that already
// carries trace headers (one consumed and published again) leaves with the
// producer span's context alone: no tracestate or baggage of the trace it
// came from, which would otherwise be read as the new trace's.
func TestForwardedMessageCarriesOnlyTheNewContext(t *testing.T) {
	rec, tp := recorder(t)
	var c capture
	pub := mwtest.Must(otel.Publisher(&c, tp))
	old := messaging.Header{
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"tracestate":  "vendor=old",
		"baggage":     "user=old",
		"app":         "1",
	}
	msg := &messaging.Message{Header: old}
	if err := pub.Publish(context.Background(), "t", msg); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 || len(c.headers) != 1 {
		t.Fatalf("%d spans, %d messages published; want 1 and 1", len(spans), len(c.headers))
	}
	h := c.headers[0]
	sc := spans[0].SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; h["traceparent"] != want {
		t.Errorf("traceparent %q, want the producer span's %q", h["traceparent"], want)
	}
	for _, k := range []string{"tracestate", "baggage"} {
		if v, ok := h[k]; ok {
			t.Errorf("%s %q left from the trace the message came from", k, v)
		}
	}
	if h["app"] != "1" || msg.Header["tracestate"] != "vendor=old" {
		t.Errorf("headers %v, caller's %v: the application's header must stay and the caller's map be unchanged", h, msg.Header)
	}
}

// failing is a publisher whose every call fails with err.
type failing struct{ err error }

func (f failing) Publish(context.Context, string, ...*messaging.Message) error { return f.err }

func (f failing) Close() error { return nil }

// TestErrorTypeAttribute: the span of a failed operation carries
// error.type (required by the semantic conventions when the operation
// failed) naming the library's error it wraps, of low cardinality: the
// sentinel inside a PublishError, the handler's panic, a permanent
// failure, else _OTHER.
func TestErrorTypeAttribute(t *testing.T) {
	rec, tp := recorder(t)
	ctx := context.Background()
	unavailable := &messaging.PublishError{Errs: []error{fmt.Errorf("redis: dial tcp: %w", messaging.ErrUnavailable)}}
	pub := mwtest.Must(otel.Publisher(failing{unavailable}, tp))
	_ = pub.Publish(ctx, "down", &messaging.Message{})
	pub.(messaging.AsyncPublisher).PublishAsync(ctx, "down-async", &messaging.Message{}, nil)
	mw := mwtest.Must(otel.New(tp))
	for topic, h := range map[string]messaging.Handler{
		"plain":     func(context.Context, *messaging.Message) error { return errors.New("no stock") },
		"permanent": func(context.Context, *messaging.Message) error { return messaging.Permanent(errors.New("bad input")) },
		"panics":    func(context.Context, *messaging.Message) error { panic("boom") },
		"expired": func(ctx context.Context, _ *messaging.Message) error {
			return fmt.Errorf("query: %w", context.DeadlineExceeded)
		},
	} {
		_ = mw(h)(ctx, &messaging.Message{ID: "m", Topic: topic, Attempt: 1})
	}
	want := map[string]string{
		"send down":         "messaging.ErrUnavailable",
		"send down-async":   "messaging.ErrUnavailable",
		"process plain":     "_OTHER",
		"process permanent": "messaging.Permanent",
		"process panics":    "messaging.ErrHandlerPanic",
		"process expired":   "context.DeadlineExceeded",
	}
	spans := rec.Ended()
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for _, s := range spans {
		if got := attrs(s)["error.type"]; got != want[s.Name()] {
			t.Errorf("span %q: error.type = %q, want %q", s.Name(), got, want[s.Name()])
		}
	}
	if got := otel.ErrorType(nil); got != "" {
		t.Errorf("ErrorType(nil) = %q, want \"\"", got)
	}
}

// TestDeadLetterDestinationAttribute: the span of a message that a
// dead-letter layer inside forwarded names the dead-letter topic
// (messaging.dead_letter.destination) and does not fail, as the message
// is settled; a message that failed without being forwarded has no such
// attribute.
func TestDeadLetterDestinationAttribute(t *testing.T) {
	rec, tp := recorder(t)
	c := mwtest.Memory(t)
	fail := func(context.Context, *messaging.Message) error { return messaging.Permanent(errors.New("boom")) }
	h := messaging.Chain(fail, mwtest.Must(otel.New(tp)), mwtest.Must(deadletter.New(c, "dlq")))
	if err := h(context.Background(), &messaging.Message{ID: "m1", Topic: "t", Attempt: 1}); err != nil {
		t.Fatalf("dead-lettered message: handler result %v, want nil", err)
	}
	h = messaging.Chain(fail, mwtest.Must(otel.New(tp)))
	if err := h(context.Background(), &messaging.Message{ID: "m2", Topic: "t", Attempt: 1}); err == nil {
		t.Fatal("failed message: handler result nil, want its error")
	}
	s := rec.Ended()
	if len(s) != 2 {
		t.Fatalf("%d spans ended, want 2", len(s))
	}
	if got := attrs(s[0])["messaging.dead_letter.destination"]; got != "dlq" || s[0].Status().Code == codes.Error {
		t.Errorf("dead-lettered span: destination %q, status %v; want dlq and no error", got, s[0].Status())
	}
	if got, ok := attrs(s[1])["messaging.dead_letter.destination"]; ok {
		t.Errorf("failed span names a dead-letter destination %q", got)
	}
}

// stamp is a publisher that, as a broker's does, gives each message it is
// given an ID and a time, and keeps them.
type stamp struct{ got []*messaging.Message }

func (s *stamp) Publish(_ context.Context, _ string, msgs ...*messaging.Message) error {
	for _, m := range msgs {
		m.ID, m.Time = fmt.Sprintf("id-%d", len(s.got)+1), time.Unix(1700000000, 0)
		s.got = append(s.got, m)
	}
	return nil
}

func (s *stamp) Close() error { return nil }

// TestConsumerSpanContinuesProducerTrace: a message published through
// Publisher and handled through New gives a producer span and a consumer
// span that is its child (the context travels in the headers); each
// carries the attributes of its operation (the message ID the publisher
// set, the destination, the delivery's attempt and group, the system), the
// handler runs in the consumer span, and the caller's message gets the ID
// and time the publisher set.
func TestConsumerSpanContinuesProducerTrace(t *testing.T) {
	rec, tp := recorder(t)
	ctx := context.Background()
	var s stamp
	pub := mwtest.Must(otel.Publisher(&s, tp, otel.WithSystem("mem")))
	msg := &messaging.Message{}
	if err := pub.Publish(ctx, "orders", msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID != "id-1" || !msg.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("caller's message ID %q, time %v; want the publisher's id-1 at %v", msg.ID, msg.Time, time.Unix(1700000000, 0))
	}
	var inHandler trace.SpanContext
	h := mwtest.Must(otel.New(tp, otel.WithSystem("mem")))(func(ctx context.Context, _ *messaging.Message) error {
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	})
	delivered := &messaging.Message{ID: "id-1", Topic: "orders", Group: "g", Attempt: 3, Header: s.got[0].Header}
	if err := h(ctx, delivered); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	wantAttrs(t, spans, map[string]map[string]string{
		"send orders": {"messaging.message.id": "id-1", "messaging.destination.name": "orders", "messaging.system": "mem"},
		"process orders": {"messaging.message.id": "id-1", "messaging.destination.name": "orders", "messaging.system": "mem",
			"messaging.message.delivery_attempt": "3", "messaging.consumer.group.name": "g"},
	})
	producer, consumer := spans[0], spans[1]
	if producer.SpanKind() != trace.SpanKindProducer || consumer.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span kinds %v and %v, want producer and consumer", producer.SpanKind(), consumer.SpanKind())
	}
	if p := consumer.Parent(); p.TraceID() != producer.SpanContext().TraceID() || p.SpanID() != producer.SpanContext().SpanID() {
		t.Errorf("consumer span's parent %v, want the producer span %v", p, producer.SpanContext())
	}
	if !inHandler.Equal(consumer.SpanContext()) {
		t.Errorf("handler's span context %v, want the consumer span's %v", inHandler, consumer.SpanContext())
	}
}

// TestValidateStartsNoSpan: middleware.Validate's dry run goes through New
// without a span: the probe message is no message to trace.
func TestValidateStartsNoSpan(t *testing.T) {
	rec, tp := recorder(t)
	if err := middleware.Validate(mwtest.Must(otel.New(tp))); err != nil {
		t.Fatal(err)
	}
	if s := rec.Ended(); len(s) != 0 {
		t.Errorf("Validate's probe left %d spans, the first %q", len(s), s[0].Name())
	}
	if s := rec.Started(); len(s) != 0 {
		t.Errorf("Validate's probe started %d spans", len(s))
	}
}

// TestErrorTypeNames: ErrorType names every sentinel of the library and
// of the context it finds wrapped, a library sentinel before the
// context's, and a sentinel before the permanent mark (a permanent
// failure that wraps a sentinel is named by the sentinel).
func TestErrorTypeNames(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{messaging.ErrHandlerPanic, "messaging.ErrHandlerPanic"},
		{messaging.ErrUnavailable, "messaging.ErrUnavailable"},
		{messaging.ErrClosed, "messaging.ErrClosed"},
		{messaging.ErrTopicDeleted, "messaging.ErrTopicDeleted"},
		{messaging.ErrTopicNotFound, "messaging.ErrTopicNotFound"},
		{messaging.ErrNoResponders, "messaging.ErrNoResponders"},
		{messaging.ErrMessageTooLarge, "messaging.ErrMessageTooLarge"},
		{messaging.ErrInvalidHeader, "messaging.ErrInvalidHeader"},
		{messaging.ErrInvalidTopic, "messaging.ErrInvalidTopic"},
		{messaging.ErrDuplicate, "messaging.ErrDuplicate"},
		{messaging.ErrUnsupported, "messaging.ErrUnsupported"},
		{messaging.ErrInvalidOption, "messaging.ErrInvalidOption"},
		{messaging.ErrInvalidURL, "messaging.ErrInvalidURL"},
		{messaging.ErrUnknownScheme, "messaging.ErrUnknownScheme"},
		{context.DeadlineExceeded, "context.DeadlineExceeded"},
		{context.Canceled, "context.Canceled"},
		{errors.Join(context.Canceled, messaging.ErrUnavailable), "messaging.ErrUnavailable"},
		{messaging.Permanent(fmt.Errorf("decode: %w", messaging.ErrInvalidHeader)), "messaging.ErrInvalidHeader"},
	} {
		if got := otel.ErrorType(fmt.Errorf("op: %w", tc.err)); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestNilMessageReportedByPublisher: a nil message is handed on for the
// wrapped publisher to report, by Publish and PublishAsync alike, and the
// send span records that error, instead of the wrapper panicking.
func TestNilMessageReportedByPublisher(t *testing.T) {
	rec, tp := recorder(t)
	ctx := context.Background()
	pub := mwtest.Must(otel.Publisher(mwtest.Memory(t), tp))
	for _, msgs := range [][]*messaging.Message{{nil}, {{}, nil}} {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return pub.Publish(ctx, "t", msgs...)
		}()
		if err == nil || strings.HasPrefix(err.Error(), "panic") {
			t.Errorf("Publish of %d messages, one nil: %v, want the publisher's error", len(msgs), err)
		}
	}
	var results []error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("PublishAsync of a nil message panicked: %v", r)
			}
		}()
		pub.(messaging.AsyncPublisher).PublishAsync(ctx, "t", nil, func(_ *messaging.Message, err error) { results = append(results, err) })
	}()
	if len(results) != 1 || results[0] == nil {
		t.Errorf("PublishAsync of a nil message: results %v, want the publisher's error", results)
	}
	for _, s := range rec.Ended() {
		if s.Status().Code != codes.Error {
			t.Errorf("span %q of a publish that failed: status %v", s.Name(), s.Status())
		}
	}
}

// TestCloseLeavesPublisherOpen: closing the tracing publisher does not
// close the publisher it wraps, which the caller owns.
func TestCloseLeavesPublisherOpen(t *testing.T) {
	_, tp := recorder(t)
	c := mwtest.Memory(t)
	pub := mwtest.Must(otel.Publisher(c, tp))
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v, want nil", err)
	}
	if err := c.Publish(context.Background(), "t", &messaging.Message{}); err != nil {
		t.Errorf("the wrapped publisher after the tracing one was closed: %v, want it open", err)
	}
}
