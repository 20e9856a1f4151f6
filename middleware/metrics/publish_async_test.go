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

// TestPublishInvalidUTF8Topic: a topic name that is not valid UTF-8 (which
// the publisher rejects) is counted as an error, by Publish and by
// PublishAsync, instead of panicking in the Prometheus client, which
// refuses such label values.
func TestPublishInvalidUTF8Topic(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := mwtest.Must(metrics.New(reg))
	pub := mwtest.Must(m.Publisher(mwtest.Memory(t)))
	ctx := context.Background()
	const topic = "bad\xff"
	publish := func(name string, f func() error) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("%s panicked: %v", name, r)
			}
		}()
		if err := f(); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("%s: %v, want ErrInvalidTopic", name, err)
		}
	}
	publish("Publish", func() error { return pub.Publish(ctx, topic, &messaging.Message{}) })
	publish("PublishAsync", func() (err error) {
		pub.(messaging.AsyncPublisher).PublishAsync(ctx, topic, &messaging.Message{}, func(_ *messaging.Message, e error) { err = e }) // memory reports before returning
		return err
	})
	if got := mustCounterPub(t, reg, "bad\uFFFD", "error"); got != 2 {
		t.Errorf("published error = %v, want 2", got)
	}
}
