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
// A topic name given to Publish that is not valid UTF-8 (the publisher
// rejects it) is labelled with its invalid bytes replaced by U+FFFD.
//
// Middleware records each delivery to a handler; BatchMiddleware records
// each message of a BatchHandler's batches the same way.
//
// A failure counts as permanent when the subscription gives the message up:
// its error is marked messaging.Permanent (as a retry layer inside marks its
// last attempt), or it is the last attempt the subscription's MaxAttempts
// allows (the adapter then terminates it, dead-lettering it natively where
// the broker is configured so); any other failure counts as retry. Handlers
// run by a Consumer outside this module (which does not tell the middleware
// the subscription's MaxAttempts) count only the first kind as permanent.
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
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/internal/utf8text"
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

// Option configures New. An Option given an invalid value makes New fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	namespace string
	buckets   []float64
}

// WithNamespace sets the metric name prefix (default "messaging"; "" for
// none). It must be a valid Prometheus name: a letter or underscore, then
// letters, digits and underscores.
func WithNamespace(ns string) Option {
	return optcheck.PrometheusNamespace("metrics", ns, func(c *config) *string { return &c.namespace })
}

// WithBuckets sets the duration histograms' buckets in seconds (default
// prometheus.DefBuckets). b must not be empty and must be strictly
// increasing.
func WithBuckets(b []float64) Option {
	return optcheck.Buckets("metrics", b, func(c *config) *[]float64 { return &c.buckets })
}

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
// error (from reg) if one of them cannot be registered there (already
// registered, or a name taken), and then leaves none registered. A nil reg is
// rejected with an error wrapping messaging.ErrInvalidOption; opts are
// applied in order and the first error is returned.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("metrics: New: nil registerer: %w", messaging.ErrInvalidOption)
	}
	c := config{namespace: DefaultNamespace, buckets: prometheus.DefBuckets}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
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
	cols := []prometheus.Collector{m.handled, m.duration, m.attempts, m.inFlight, m.deadLetters, m.published, m.pubDuration}
	for i, col := range cols {
		if err := reg.Register(col); err != nil {
			for _, done := range cols[:i] {
				reg.Unregister(done)
			}
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
			m.inFlight.WithLabelValues(msg.Topic, msg.Group).Inc()
			ctx, report := layer.WithReport(ctx)
			start := time.Now()
			err := layer.Call(ctx, next, msg)
			m.handledOne(ctx, msg, time.Since(start), err, report)
			return err
		}
	}
}

// BatchMiddleware returns the middleware of a messaging.BatchHandler (of
// BatchConsumer.SubscribeBatch, batch.Subscribe or poll.Drain) recording
// into m. Each message of a batch is recorded as Middleware records a
// delivery: in_flight while the batch runs, the batch's duration as its
// handle duration, its attempt, and its outcome from its own result (a
// BatchHandler has no dead-letter or dedupe layer inside, so the outcomes
// are ack, retry and permanent). A panic in the handler, or a result slice
// of the wrong length, fails every message, as the adapter treats it: the
// wrapped handler returns that error (wrapping messaging.ErrHandlerPanic
// for a panic) for every message instead of panicking. The results are
// otherwise returned unchanged.
func (m *Metrics) BatchMiddleware() func(messaging.BatchHandler) messaging.BatchHandler {
	return func(next messaging.BatchHandler) messaging.BatchHandler {
		return func(ctx context.Context, msgs []*messaging.Message) []error {
			for _, msg := range msgs {
				m.inFlight.WithLabelValues(msg.Topic, msg.Group).Inc()
			}
			start := time.Now()
			errs, _ := layer.CallBatch(ctx, next, msgs)
			took := time.Since(start)
			for i, msg := range msgs {
				var err error
				if errs != nil {
					err = errs[i]
				}
				m.handledOne(ctx, msg, took, err, nil)
			}
			return errs
		}
	}
}

// handledOne records the handling of msg in ctx (the handler context),
// which took d and ended with err, and what inner layers reported (nil for
// none), and leaves in_flight, which the caller entered.
func (m *Metrics) handledOne(ctx context.Context, msg *messaging.Message, d time.Duration, err error, report *layer.Report) {
	m.duration.WithLabelValues(msg.Topic, msg.Group).Observe(d.Seconds())
	m.inFlight.WithLabelValues(msg.Topic, msg.Group).Dec()
	m.attempts.WithLabelValues(msg.Topic, msg.Group).Observe(float64(msg.Attempt))
	out := outcome(ctx, msg, err, report)
	if out == OutcomeDeadLettered {
		m.deadLetters.WithLabelValues(msg.Topic, msg.Group).Inc()
	}
	m.handled.WithLabelValues(msg.Topic, msg.Group, out).Inc()
}

// outcome classifies the result err of handling msg in ctx (the handler
// context) for the outcome label. A failure is classified as the
// subscription settles it: a failed last attempt of a subscription with
// MaxAttempts is given up (terminated), as a Permanent error is.
func outcome(ctx context.Context, msg *messaging.Message, err error, r *layer.Report) string {
	switch {
	case err == nil && r != nil && r.DeadLetterTopic != "":
		return OutcomeDeadLettered
	case err == nil && r != nil && r.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeAck
	case layer.GivenUp(ctx, msg, err):
		return OutcomePermanent
	}
	return OutcomeRetry
}

// Publisher returns p recording publish counts and durations into m. Close
// returns nil and does not close p, which the caller owns. A nil p is
// rejected with an error wrapping messaging.ErrInvalidOption.
func (m *Metrics) Publisher(p messaging.Publisher) (messaging.Publisher, error) {
	if p == nil {
		return nil, fmt.Errorf("metrics: Publisher: nil publisher: %w", messaging.ErrInvalidOption)
	}
	return &publisher{p: p, m: m}, nil
}

type publisher struct {
	p messaging.Publisher
	m *Metrics
}

// topicLabel is topic as a label value: the Prometheus client panics on a
// value that is not valid UTF-8, and Publish may be given such a name (which
// the publisher rejects), so invalid bytes become U+FFFD.
func topicLabel(topic string) string { return utf8text.Valid(topic) }

func (t *publisher) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	start := time.Now()
	err := t.p.Publish(ctx, topic, msgs...)
	topic = topicLabel(topic)
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
