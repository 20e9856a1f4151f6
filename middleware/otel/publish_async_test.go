package otel_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/otel"
)

// held is an AsyncPublisher that, as a broker's does, gives each message an
// ID and a time, and holds the results until Flush.
type held struct {
	mu      sync.Mutex
	got     []*messaging.Message
	pending []func()
	flushes int
	syncs   int // Publish calls
}

func (h *held) Publish(context.Context, string, ...*messaging.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.syncs++
	return errors.New("held: Publish called instead of PublishAsync")
}

func (h *held) Close() error { return nil }

func (h *held) PublishAsync(_ context.Context, _ string, msg *messaging.Message, done messaging.PublishCallback) {
	h.mu.Lock()
	defer h.mu.Unlock()
	msg.ID, msg.Time = fmt.Sprintf("id-%d", len(h.got)+1), time.Unix(1700000000, 0)
	h.got = append(h.got, msg)
	h.pending = append(h.pending, func() { done(msg, nil) })
}

func (h *held) Flush(context.Context) error {
	h.mu.Lock()
	pending := h.pending
	h.pending = nil
	h.flushes++
	h.mu.Unlock()
	for _, f := range pending {
		f()
	}
	return nil
}

// TestPublishAsyncSpanEndsWithResult: PublishAsync goes through the wrapped
// publisher's PublishAsync with the producer span's context in a copy of
// the headers; the span lasts until the result, then carries the message
// ID; done gets the caller's message with the publisher's ID and time; and
// Flush flushes the wrapped publisher.
func TestPublishAsyncSpanEndsWithResult(t *testing.T) {
	rec, tp := recorder(t)
	ctx := context.Background()
	var h held
	pub := mwtest.Must(otel.Publisher(&h, tp)).(messaging.AsyncPublisher)
	msg := &messaging.Message{Header: messaging.Header{"app": "1"}}
	var results []*messaging.Message
	var resultIDs []string
	pub.PublishAsync(ctx, "orders", msg, func(m *messaging.Message, err error) {
		if err != nil {
			t.Errorf("result %v, want nil", err)
		}
		results = append(results, m)
		resultIDs = append(resultIDs, m.ID)
	})
	if s := rec.Ended(); len(s) != 0 {
		t.Fatalf("%d spans ended before the message's result, want none", len(s))
	}
	started := rec.Started()
	if len(started) != 1 || len(h.got) != 1 || h.syncs != 0 {
		t.Fatalf("%d spans started, %d messages published asynchronously, %d Publish calls; want 1, 1 and 0", len(started), len(h.got), h.syncs)
	}
	sc := started[0].SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; h.got[0].Header["traceparent"] != want || h.got[0].Header["app"] != "1" {
		t.Errorf("published headers %v, want app=1 and the producer span's traceparent %q", h.got[0].Header, want)
	}
	if _, ok := msg.Header["traceparent"]; ok {
		t.Errorf("caller's headers changed: %v", msg.Header)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if h.flushes != 1 {
		t.Errorf("wrapped publisher flushed %d times, want 1", h.flushes)
	}
	if len(results) != 1 || results[0] != msg || resultIDs[0] != "id-1" || !msg.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("done called with %v (IDs %q), caller's message %p at %v; want once with the caller's message, ID id-1, the publisher's time",
			results, resultIDs, msg, msg.Time)
	}
	spans := rec.Ended()
	wantAttrs(t, spans, map[string]map[string]string{"send orders": {"messaging.message.id": "id-1", "error.type": "-"}})
	if spans[0].SpanKind() != trace.SpanKindProducer {
		t.Errorf("span kind %v, want producer", spans[0].SpanKind())
	}
}
