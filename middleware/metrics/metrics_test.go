package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/middleware/metrics"
	"github.com/msgkit/messaging/middleware/retry"
)

func TestOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
	c := mwtest.Memory(t)
	h := messaging.Chain(func(_ context.Context, msg *messaging.Message) error {
		if string(msg.Payload) == "bad" {
			return errors.New("boom")
		}
		return nil
	}, m.Middleware(), mwtest.Must(deadletter.New(c, "dlq")), mwtest.Must(dedupe.New(dedupe.NewMemoryStore())), mwtest.Must(retry.New(retry.WithMaxAttempts(2))))
	ctx := context.Background()
	good := &messaging.Message{ID: "1", Topic: "t", Group: "g", Attempt: 1}
	bad := &messaging.Message{ID: "2", Topic: "t", Group: "g", Attempt: 1, Payload: []byte("bad")}
	_ = h(ctx, good)
	_ = h(ctx, good) // duplicate
	_ = h(ctx, bad)  // retry
	bad.Attempt = 2
	_ = h(ctx, bad) // dead-lettered
	for outcome, want := range map[string]float64{"ack": 1, "duplicate": 1, "retry": 1, "dead_lettered": 1, "permanent": 0} {
		got := (mustCounter(t, reg, "messaging_handled_total", outcome))
		if got != want {
			t.Errorf("handled_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if v := gathered(t, reg, "messaging_dead_letters_total", map[string]string{"topic": "t", "group": "g"}); v != 1 {
		t.Errorf("dead_letters_total = %v, want 1", v)
	}
	if n := histogramCount(t, reg, "messaging_handle_duration_seconds"); n != 4 {
		t.Errorf("handle_duration_seconds count %d, want 4", n)
	}

	pub := mwtest.Must(m.Publisher(c))
	if err := pub.Publish(ctx, "out", &messaging.Message{}, &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	_ = pub.Publish(ctx, "bad topic!", &messaging.Message{})
	if got := (mustCounterPub(t, reg, "out", "ok")); got != 2 {
		t.Errorf("published ok = %v, want 2", got)
	}
	if got := (mustCounterPub(t, reg, "bad topic!", "error")); got != 1 {
		t.Errorf("published error = %v, want 1", got)
	}
}

// mustCounter returns the handled_total counter for topic t, group g.
func mustCounter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	return gathered(t, reg, name, map[string]string{"topic": "t", "group": "g", "outcome": outcome})
}

func mustCounterPub(t *testing.T, reg *prometheus.Registry, topic, outcome string) float64 {
	t.Helper()
	return gathered(t, reg, "messaging_published_total", map[string]string{"topic": topic, "outcome": outcome})
}

// gathered returns the value of the counter or gauge series name{labels},
// 0 if absent.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, want := range labels {
				if got[k] != want {
					continue series
				}
			}
			v = m.GetCounter().GetValue() + m.GetGauge().GetValue() // the one it is
		}
	}
	return v
}

// histogramCount returns the total sample count of the histogram name.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestNewFailureRegistersNothing: when one of the collectors cannot be
// registered (a name already taken in the registry), New registers none of
// them, so the registry is as it was and New can be called again once the
// conflict is gone.
func TestNewFailureRegistersNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Another Metrics' collector (the registry keeps a name's labels and
	// help for its lifetime, so only the same description can come back).
	taken := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "messaging", Name: "published_total",
		Help: "Messages published, by outcome."}, []string{"topic", "outcome"})
	reg.MustRegister(taken)
	if m, err := metrics.New(reg); err == nil || m != nil {
		t.Fatalf("New with a taken name: %v, %v; want an error", m, err)
	}
	reg.Unregister(taken)
	if _, err := metrics.New(reg); err != nil {
		t.Fatalf("New after the conflict was removed: %v", err)
	}
}

// TestMaxAttemptsGiveUpIsPermanent: without a retry layer, the failed last
// attempt of a subscription with MaxAttempts(2) is given up by the adapter,
// so it counts as permanent, not as retry; the first attempt counts as retry.
func TestMaxAttemptsGiveUpIsPermanent(t *testing.T) {
	reg := prometheus.NewRegistry()
	topic := mwtest.GiveUp(t, mwtest.Must(metrics.New(reg)).Middleware())
	labels := func(outcome string) map[string]string {
		return map[string]string{"topic": topic, "group": "g", "outcome": outcome}
	}
	retried := gathered(t, reg, "messaging_handled_total", labels(metrics.OutcomeRetry))
	given := gathered(t, reg, "messaging_handled_total", labels(metrics.OutcomePermanent))
	if retried != 1 || given != 1 {
		t.Errorf("handled_total: retry %v, permanent %v; want 1 and 1 (attempt 2 of MaxAttempts(2) is given up)", retried, given)
	}
}

// TestBatchMiddlewareOutcomes: each message of a SubscribeBatch batch is
// counted by its own result as Middleware counts a delivery, including the
// give-up of the subscription's MaxAttempts: two acks, the failing message's
// first attempt as retry and its last as permanent; nothing stays in flight.
func TestBatchMiddlewareOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := mwtest.Must(metrics.New(reg))
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 10*time.Second)
	topic := mwtest.Topic(t, c, "batch")
	mwtest.Publish(t, ctx, c, topic, &messaging.Message{Payload: []byte("ok")}, &messaging.Message{Payload: []byte("bad")}, &messaging.Message{Payload: []byte("ok")})
	last := make(chan struct{})
	h := m.BatchMiddleware()(func(_ context.Context, msgs []*messaging.Message) []error {
		errs := make([]error, len(msgs))
		for i, msg := range msgs {
			if string(msg.Payload) == "bad" {
				errs[i] = errors.New("boom")
			}
		}
		return errs
	})
	signal := func(ctx context.Context, msgs []*messaging.Message) []error {
		errs := h(ctx, msgs) // counted when it returns
		for _, msg := range msgs {
			if msg.Attempt == 2 {
				close(last)
			}
		}
		return errs
	}
	sub, err := c.SubscribeBatch(ctx, topic, signal, messaging.Group("g"), messaging.MaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case <-last:
	case <-ctx.Done():
		t.Fatal("the second attempt was not delivered")
	}
	for outcome, want := range map[string]float64{metrics.OutcomeAck: 2, metrics.OutcomeRetry: 1, metrics.OutcomePermanent: 1} {
		if got := gathered(t, reg, "messaging_handled_total", map[string]string{"topic": topic, "group": "g", "outcome": outcome}); got != want {
			t.Errorf("handled_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if n := histogramCount(t, reg, "messaging_handle_duration_seconds"); n != 4 {
		t.Errorf("handle_duration_seconds count %d, want 4 (one per delivery)", n)
	}
	if v := gathered(t, reg, "messaging_in_flight", map[string]string{"topic": topic, "group": "g"}); v != 0 {
		t.Errorf("in_flight %v after the batches, want 0", v)
	}
}

// TestBatchMiddlewarePanic: a panicking batch handler fails every message
// with ErrHandlerPanic (the wrapper does not panic), each counted as retry.
func TestBatchMiddlewarePanic(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := mwtest.Must(metrics.New(reg))
	h := m.BatchMiddleware()(func(context.Context, []*messaging.Message) []error { panic("boom") })
	errs := h(context.Background(), []*messaging.Message{{ID: "1", Topic: "t", Group: "g", Attempt: 1}, {ID: "2", Topic: "t", Group: "g", Attempt: 1}})
	if len(errs) != 2 || !errors.Is(errs[0], messaging.ErrHandlerPanic) || !errors.Is(errs[1], messaging.ErrHandlerPanic) {
		t.Fatalf("results %v, want ErrHandlerPanic for both messages", errs)
	}
	if got := mustCounter(t, reg, "messaging_handled_total", metrics.OutcomeRetry); got != 2 {
		t.Errorf("handled_total{outcome=retry} = %v, want 2", got)
	}
	if v := gathered(t, reg, "messaging_in_flight", map[string]string{"topic": "t", "group": "g"}); v != 0 {
		t.Errorf("in_flight %v, want 0", v)
	}
}

// TestDeliveryAttemptHistogram: delivery_attempt records each delivery's
// Message.Attempt.
func TestDeliveryAttemptHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := mwtest.Must(metrics.New(reg))
	h := m.Middleware()(func(context.Context, *messaging.Message) error { return nil })
	for _, a := range []int{1, 3} {
		_ = h(context.Background(), &messaging.Message{ID: "1", Topic: "t", Group: "g", Attempt: a})
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "messaging_delivery_attempt" {
			for _, s := range mf.GetMetric() {
				sum += s.GetHistogram().GetSampleSum()
				n += s.GetHistogram().GetSampleCount()
			}
		}
	}
	if n != 2 || sum != 4 {
		t.Fatalf("delivery_attempt: %d samples summing to %v, want 2 summing to 4 (attempts 1 and 3)", n, sum)
	}
}

// partly is a Publisher whose every second message fails.
type partly struct{}

func (partly) Publish(_ context.Context, _ string, msgs ...*messaging.Message) error {
	errs := make([]error, len(msgs))
	for i := 1; i < len(msgs); i += 2 {
		errs[i] = errors.New("refused")
	}
	return &messaging.PublishError{Errs: errs}
}
func (partly) Close() error { return nil }

// TestPublisherCountsPerMessageFailures: when the publisher reports
// per-message failures, published_total counts the failed messages as
// error and the others as ok.
func TestPublisherCountsPerMessageFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := mwtest.Must(metrics.New(reg))
	pub := mwtest.Must(m.Publisher(partly{}))
	_ = pub.Publish(context.Background(), "out", &messaging.Message{}, &messaging.Message{}, &messaging.Message{})
	if ok, bad := mustCounterPub(t, reg, "out", "ok"), mustCounterPub(t, reg, "out", "error"); ok != 2 || bad != 1 {
		t.Fatalf("published ok %v, error %v; want 2 and 1", ok, bad)
	}
}
