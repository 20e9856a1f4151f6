package otel_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/otel"
)

// produced returns messages to topic carrying the trace context of a
// producer span each (one Publish call per message through otel.Publisher),
// and those spans' contexts.
func produced(t *testing.T, tp otel.Option, topic string, ids ...string) ([]*messaging.Message, []trace.SpanContext) {
	t.Helper()
	var c capture
	pub := mwtest.Must(otel.Publisher(&c, tp))
	var msgs []*messaging.Message
	for i, id := range ids {
		if err := pub.Publish(context.Background(), topic, &messaging.Message{ID: id}); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &messaging.Message{ID: id, Topic: topic, Group: "g", Attempt: i + 2, Header: c.headers[i]})
	}
	var scs []trace.SpanContext
	for _, m := range msgs {
		scs = append(scs, spanContextOf(t, m))
	}
	return msgs, scs
}

// spanContextOf returns the span context in m's traceparent header.
func spanContextOf(t *testing.T, m *messaging.Message) trace.SpanContext {
	t.Helper()
	p := strings.Split(m.Header["traceparent"], "-")
	if len(p) != 4 {
		t.Fatalf("message %s: traceparent %q", m.ID, m.Header["traceparent"])
	}
	tid, err1 := trace.TraceIDFromHex(p[1])
	sid, err2 := trace.SpanIDFromHex(p[2])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// processSpans returns the ended spans of consumers.
func processSpans(spans []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindConsumer {
			out = append(out, s)
		}
	}
	return out
}

// TestBatchSpan: one consumer span per batch, with the batch attributes of
// the semantic conventions, a link to each message's producer context (none
// for a message without one), the handler's context inside the span, and
// the failures counted and typed; the results are returned unchanged.
func TestBatchSpan(t *testing.T) {
	rec, tp := recorder(t)
	msgs, producers := produced(t, tp, "orders", "a", "b", "c")
	msgs = append(msgs, &messaging.Message{ID: "d", Topic: "orders", Group: "g", Attempt: 1}) // no trace headers
	boom := errors.New("no stock")
	want := []error{nil, boom, nil, messaging.Permanent(errors.New("bad input"))}
	var inHandler trace.SpanContext
	h := mwtest.Must(otel.NewBatch(tp, otel.WithSystem("mem")))(func(ctx context.Context, got []*messaging.Message) []error {
		inHandler = trace.SpanContextFromContext(ctx)
		return want
	})
	errs := h(context.Background(), msgs)
	if len(errs) != len(want) || errs[1] != boom || errs[0] != nil {
		t.Fatalf("results %v, want the handler's %v", errs, want)
	}
	spans := processSpans(rec.Ended())
	if len(spans) != 1 {
		t.Fatalf("%d consumer spans, want 1 for the batch", len(spans))
	}
	s := spans[0]
	if s.Name() != "process orders" {
		t.Errorf("span name %q, want %q", s.Name(), "process orders")
	}
	if !inHandler.Equal(s.SpanContext()) {
		t.Errorf("handler's span context %v, want the batch span's %v", inHandler, s.SpanContext())
	}
	if s.Parent().IsValid() {
		t.Errorf("batch span has parent %v; the producers' contexts must be links, not the parent", s.Parent())
	}
	for k, v := range map[string]string{
		"messaging.operation.type":             "process",
		"messaging.operation.name":             "process",
		"messaging.destination.name":           "orders",
		"messaging.consumer.group.name":        "g",
		"messaging.batch.message_count":        "4",
		"messaging.system":                     "mem",
		"messaging.batch.failed_message_count": "2",
		"error.type":                           "_OTHER", // the first failure's
	} {
		if got := attrs(s)[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "2 of 4") {
		t.Errorf("status %v, want Error counting 2 of 4 failed", s.Status())
	}
	var failedIDs []string
	for _, e := range s.Events() {
		var id, typ string
		for _, kv := range e.Attributes {
			switch kv.Key {
			case "messaging.message.id":
				id = kv.Value.AsString()
			case "error.type":
				typ = kv.Value.AsString()
			}
		}
		failedIDs = append(failedIDs, id+"="+typ)
	}
	if strings.Join(failedIDs, ",") != "b=_OTHER,d=messaging.Permanent" {
		t.Errorf("exception events for messages (ID=error.type) %v, want b=_OTHER,d=messaging.Permanent", failedIDs)
	}
	links := s.Links()
	if len(links) != len(producers) {
		t.Fatalf("%d links, want %d (one per message with a producer context)", len(links), len(producers))
	}
	for i, l := range links {
		if !l.SpanContext.Equal(producers[i]) {
			t.Errorf("link %d to %v, want message %s's producer %v", i, l.SpanContext, msgs[i].ID, producers[i])
		}
		got := map[string]string{}
		for _, kv := range l.Attributes {
			got[string(kv.Key)] = kv.Value.String()
		}
		if got["messaging.message.id"] != msgs[i].ID || got["messaging.message.delivery_attempt"] != strconv.Itoa(i+2) {
			t.Errorf("link %d attributes %v, want message %s, attempt %d", i, got, msgs[i].ID, i+2)
		}
	}
}

// TestBatchSpanShapes: a batch of one has no message_count; a batch of
// messages delivered to no group has no group; messages of several topics
// give a span without destination named "process"; a batch that succeeded
// has no error status or type.
func TestBatchSpanShapes(t *testing.T) {
	rec, tp := recorder(t)
	h := mwtest.Must(otel.NewBatch(tp))(func(context.Context, []*messaging.Message) []error { return nil })
	ctx := context.Background()
	if errs := h(ctx, []*messaging.Message{{ID: "1", Topic: "one", Attempt: 1}}); errs != nil {
		t.Fatalf("results %v, want nil", errs)
	}
	_ = h(ctx, []*messaging.Message{{ID: "2", Topic: "x", Group: "g", Attempt: 1}, {ID: "3", Topic: "y", Group: "h", Attempt: 1}})
	want := map[string]map[string]string{ // span name -> attribute -> value ("-" for absent)
		"process one": {"messaging.batch.message_count": "-", "messaging.destination.name": "one", "messaging.consumer.group.name": "-", "error.type": "-", "messaging.batch.failed_message_count": "-"},
		"process":     {"messaging.batch.message_count": "2", "messaging.destination.name": "-", "messaging.consumer.group.name": "-"},
	}
	spans := processSpans(rec.Ended())
	wantAttrs(t, spans, want)
	for _, s := range spans {
		if s.Status().Code != codes.Unset {
			t.Errorf("span %q of a successful batch: status %v", s.Name(), s.Status())
		}
	}
}

// TestBatchPanicFailsEveryMessage: a handler that panics fails every
// message with an error wrapping ErrHandlerPanic (the wrapper does not
// panic), recorded once; a result of the wrong length fails every message
// as the adapter would.
func TestBatchPanicFailsEveryMessage(t *testing.T) {
	rec, tp := recorder(t)
	mw := mwtest.Must(otel.NewBatch(tp))
	msgs := []*messaging.Message{{ID: "1", Topic: "p", Attempt: 1}, {ID: "2", Topic: "p", Attempt: 1}}
	errs := mw(func(context.Context, []*messaging.Message) []error { panic("boom") })(context.Background(), msgs)
	if len(errs) != 2 || !errors.Is(errs[0], messaging.ErrHandlerPanic) || !errors.Is(errs[1], messaging.ErrHandlerPanic) {
		t.Fatalf("results %v, want ErrHandlerPanic for both messages", errs)
	}
	msgs = []*messaging.Message{{ID: "3", Topic: "short", Attempt: 1}, {ID: "4", Topic: "short", Attempt: 1}}
	errs = mw(func(context.Context, []*messaging.Message) []error { return []error{nil} })(context.Background(), msgs)
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil {
		t.Fatalf("results %v of a one-result slice for two messages, want an error for both", errs)
	}
	want := map[string]string{"process p": "messaging.ErrHandlerPanic", "process short": "_OTHER"}
	for _, s := range processSpans(rec.Ended()) {
		if got := attrs(s)["error.type"]; got != want[s.Name()] {
			t.Errorf("span %q: error.type %q, want %q", s.Name(), got, want[s.Name()])
		}
		if got := attrs(s)["messaging.batch.failed_message_count"]; got != "2" {
			t.Errorf("span %q: failed count %q, want 2", s.Name(), got)
		}
		if n := len(s.Events()); n != 1 {
			t.Errorf("span %q: %d events, want the batch's failure once", s.Name(), n)
		}
	}
}

// TestBatchOverSubscribeBatch: messages published through otel.Publisher
// and consumed with the memory adapter's SubscribeBatch give a batch span
// linked to each message's producer span.
func TestBatchOverSubscribeBatch(t *testing.T) {
	rec, tp := recorder(t)
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 10*time.Second)
	topic := mwtest.Topic(t, c, "batchspan")
	pub := mwtest.Must(otel.Publisher(c, tp))
	for range 2 {
		mwtest.Publish(t, ctx, pub, topic, &messaging.Message{})
	}
	var producers []trace.SpanContext
	for _, s := range rec.Ended() {
		producers = append(producers, s.SpanContext().WithRemote(true)) // as read from the headers
	}
	got := make(chan int, 1)
	h := mwtest.Must(otel.NewBatch(tp))(func(_ context.Context, msgs []*messaging.Message) []error {
		got <- len(msgs)
		return nil
	})
	sub, err := c.SubscribeBatch(ctx, topic, h, messaging.Group("g"), messaging.BatchSize(2), messaging.BatchWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("batch of %d messages, want 2", n)
		}
	case <-ctx.Done():
		t.Fatal("no batch delivered")
	}
	_ = sub.Close() // the span has ended once the handler returned and the subscription stopped
	spans := processSpans(rec.Ended())
	if len(spans) != 1 {
		t.Fatalf("%d consumer spans, want 1", len(spans))
	}
	links := spans[0].Links()
	if len(links) != 2 || !links[0].SpanContext.Equal(producers[0]) || !links[1].SpanContext.Equal(producers[1]) {
		t.Errorf("links %v, want the producer spans %v in order", links, producers)
	}
}

// TestBatchSpanIsChildOfHandlerContext: the batch span is a child of the
// context the handler is called in, and a message without a trace context
// of its own gets no link (not one to that context's span).
func TestBatchSpanIsChildOfHandlerContext(t *testing.T) {
	rec, tp := recorder(t)
	tpr := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tpr.Shutdown(context.Background()) })
	ctx, parent := tpr.Tracer("test").Start(context.Background(), "poll")
	h := mwtest.Must(otel.NewBatch(tp))(func(context.Context, []*messaging.Message) []error { return nil })
	_ = h(ctx, []*messaging.Message{{ID: "1", Topic: "plain", Attempt: 1}, {ID: "2", Topic: "plain", Attempt: 1}})
	parent.End()
	spans := processSpans(rec.Ended())
	if len(spans) != 1 {
		t.Fatalf("%d consumer spans, want 1", len(spans))
	}
	s := spans[0]
	if p := s.Parent(); p.SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("batch span's parent %v, want the handler context's span %v", p, parent.SpanContext())
	}
	if l := s.Links(); len(l) != 0 {
		t.Errorf("%d links for messages without a trace context, the first to %v; want none", len(l), l[0].SpanContext)
	}
}
