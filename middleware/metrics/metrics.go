// Package metrics counts and times message handling and publishing with
// Prometheus (github.com/prometheus/client_golang).
//
// Metrics, all labelled with topic and group (publish metrics with topic):
//
//	<ns>_handled_total{topic,group,outcome}     deliveries by outcome: ack,
//	                                            retry, permanent,
//	                                            dead_lettered, duplicate
//	<ns>_handle_duration_seconds{topic,group}   handler time, histogram
//	<ns>_delivery_attempt{topic,group}          Message.Attempt, histogram
//	<ns>_in_flight{topic,group}                 handlers running now
//	<ns>_dead_letters_total{topic,group}        messages sent to a dead-letter
//	                                            topic by a layer inside
//	<ns>_published_total{topic,outcome}         messages published (ok, error)
//	<ns>_publish_duration_seconds{topic}        Publish call time, histogram
//
// Put the middleware outside deadletter and dedupe to see dead letters and
// duplicates (they turn failures into acknowledgements, which it could not
// tell apart otherwise).
package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// Outcome label values of handled_total.
const (
	OutcomeAck          = "ack"
	OutcomeRetry        = "retry"
	OutcomePermanent    = "permanent"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDuplicate    = "duplicate"
)

// DefaultNamespace prefixes the metric names.
const DefaultNamespace = "messaging"

// Option configures New.
type Option func(*config)

type config struct {
	namespace string
	buckets   []float64
}

// Namespace sets the metric name prefix (default "messaging").
func Namespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// Buckets sets the duration histograms' buckets in seconds (default
// prometheus.DefBuckets).
func Buckets(b []float64) Option { return func(c *config) { c.buckets = b } }

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	handled     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	attempts    *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec
	deadLetters *prometheus.CounterVec
	published   *prometheus.CounterVec
	pubDuration *prometheus.HistogramVec
}

// New creates the collectors and registers them with reg. It returns an
// error (from reg) if they are already registered there.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	c := config{namespace: DefaultNamespace, buckets: prometheus.DefBuckets}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	ns := c.namespace
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handled_total",
			Help: "Deliveries handled, by outcome."}, []string{"topic", "group", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "handle_duration_seconds",
			Help: "Time spent in the handler.", Buckets: c.buckets}, []string{"topic", "group"}),
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "delivery_attempt",
			Help: "Delivery attempt number of handled messages.", Buckets: []float64{1, 2, 3, 5, 10, 20}}, []string{"topic", "group"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "in_flight",
			Help: "Handlers running now."}, []string{"topic", "group"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dead_letters_total",
			Help: "Messages sent to a dead-letter topic."}, []string{"topic", "group"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "published_total",
			Help: "Messages published, by outcome."}, []string{"topic", "outcome"}),
		pubDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "publish_duration_seconds",
			Help: "Time of Publish calls.", Buckets: c.buckets}, []string{"topic"}),
	}
	for _, col := range []prometheus.Collector{m.handled, m.duration, m.attempts, m.inFlight, m.deadLetters, m.published, m.pubDuration} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Middleware returns the handler middleware recording into m.
func (m *Metrics) Middleware() messaging.Middleware {
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Metrics})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			inFlight := m.inFlight.WithLabelValues(msg.Topic, msg.Group)
			inFlight.Inc()
			ctx, report := layer.WithReport(ctx)
			start := time.Now()
			err := layer.Call(ctx, next, msg)
			m.duration.WithLabelValues(msg.Topic, msg.Group).Observe(time.Since(start).Seconds())
			inFlight.Dec()
			m.attempts.WithLabelValues(msg.Topic, msg.Group).Observe(float64(msg.Attempt))
			out := outcome(err, report)
			if out == OutcomeDeadLettered {
				m.deadLetters.WithLabelValues(msg.Topic, msg.Group).Inc()
			}
			m.handled.WithLabelValues(msg.Topic, msg.Group, out).Inc()
			return err
		}
	}
}

// outcome classifies a handler result for the outcome label.
func outcome(err error, r *layer.Report) string {
	switch {
	case err == nil && r != nil && r.DeadLetterTopic != "":
		return OutcomeDeadLettered
	case err == nil && r != nil && r.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeAck
	case messaging.IsPermanent(err):
		return OutcomePermanent
	}
	return OutcomeRetry
}

// Publisher returns p recording publish counts and durations into m. Close
// returns nil and does not close p, which the caller owns.
func (m *Metrics) Publisher(p messaging.Publisher) messaging.Publisher {
	return &publisher{p: p, m: m}
}

type publisher struct {
	p messaging.Publisher
	m *Metrics
}

func (t *publisher) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	start := time.Now()
	err := t.p.Publish(ctx, topic, msgs...)
	t.m.pubDuration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	failed := len(msgs)
	if err == nil {
		failed = 0
	} else if pe, ok := err.(*messaging.PublishError); ok && len(pe.Errs) == len(msgs) {
		failed = len(pe.Failed())
	}
	if ok := len(msgs) - failed; ok > 0 {
		t.m.published.WithLabelValues(topic, "ok").Add(float64(ok))
	}
	if failed > 0 {
		t.m.published.WithLabelValues(topic, "error").Add(float64(failed))
	}
	return err
}

func (t *publisher) Close() error { return nil }
