package metrics_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/metrics"
)

func TestPublishAsyncCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	pub := mwtest.Must(m.Publisher(mwtest.Memory(t))).(messaging.AsyncPublisher)
	ctx := context.Background()
	var results []error
	done := func(_ *messaging.Message, err error) { results = append(results, err) } // memory reports before returning
	pub.PublishAsync(ctx, "out", &messaging.Message{}, done)
	pub.PublishAsync(ctx, "out", &messaging.Message{Header: messaging.Header{"msgkit-x": "reserved"}}, done)
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0] != nil || !errors.Is(results[1], messaging.ErrInvalidHeader) {
		t.Fatalf("results %v, want nil and ErrInvalidHeader", results)
	}
	if got := mustCounterPub(t, reg, "out", "ok"); got != 1 {
		t.Errorf("published ok = %v, want 1", got)
	}
	if got := mustCounterPub(t, reg, "out", "error"); got != 1 {
		t.Errorf("published error = %v, want 1", got)
	}
}
