// Package outboxprom exports an outbox relay's metrics and the outbox's
// backlog to Prometheus (github.com/prometheus/client_golang), named like
// middleware/metrics:
//
//	<ns>_outbox_forwarded_total                messages published and marked
//	<ns>_outbox_failed_total                   messages Publish did not accept
//	                                           or rows not read (tried again)
//	<ns>_outbox_unmarked_total                 messages published but not
//	                                           marked (sent again: duplicates)
//	<ns>_outbox_forward_latency_seconds        insert into the outbox to broker
//	                                           acceptance, histogram
//	<ns>_outbox_backlog                        unforwarded messages (read from
//	                                           the database at each scrape)
//	<ns>_outbox_oldest_age_seconds             age of the oldest unforwarded one
//	<ns>_outbox_relays                         live relays
//	<ns>_outbox_status_up                      1 when the scrape's status
//	                                           query succeeded, else 0
//
// The counters count what the relays given OnBatch did; the gauges are the
// outbox's, whichever relay forwards. A failed status query (the database
// is down, or slower than WithScrapeTimeout) does not fail the scrape, which
// would take every other metric of the registry with it: the backlog, age
// and relays gauges are left out and status_up is 0. Register one Metrics per outbox (wrap
// the registerer with prometheus.WrapRegistererWith to label several).
package outboxprom

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/outbox"
)

// Option configures New. An Option given an invalid value makes New fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	namespace string
	buckets   []float64
	timeout   time.Duration
}

// WithNamespace sets the metric name prefix (default "messaging"; "" for
// none). It must be a valid Prometheus name: a letter or underscore, then
// letters, digits and underscores.
func WithNamespace(ns string) Option {
	return optcheck.PrometheusNamespace("outboxprom", ns, func(c *config) *string { return &c.namespace })
}

// WithBuckets sets the latency histogram's buckets in seconds (default 1ms
// to about 16s, doubling). b must not be empty and must be strictly
// increasing.
func WithBuckets(b []float64) Option {
	return optcheck.Buckets("outboxprom", b, func(c *config) *[]float64 { return &c.buckets })
}

// WithScrapeTimeout bounds the status query a scrape runs (default 5s; must
// be positive).
func WithScrapeTimeout(d time.Duration) Option {
	return optcheck.Positive("outboxprom", "WithScrapeTimeout", d, func(c *config) *time.Duration { return &c.timeout })
}

// Metrics holds the collectors; safe for concurrent use.
type Metrics struct {
	forwarded, failed, unmarked prometheus.Counter
	latency                     prometheus.Histogram
}

// New creates the collectors for ob's outbox in db and registers them with
// reg; it returns reg's error if they are already registered there, and
// then leaves none of them registered. A nil
// reg, ob or db is rejected with an error wrapping
// messaging.ErrInvalidOption; opts are applied in order and the first error
// is returned.
func New(reg prometheus.Registerer, ob *outbox.Outbox, db *sql.DB, opts ...Option) (*Metrics, error) {
	if reg == nil || ob == nil || db == nil {
		return nil, fmt.Errorf("outboxprom: New needs a registerer, an outbox and a database: %w", messaging.ErrInvalidOption)
	}
	c := config{namespace: "messaging", buckets: prometheus.ExponentialBuckets(0.001, 2, 15), timeout: 5 * time.Second}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: c.namespace, Subsystem: "outbox", Name: name, Help: help})
	}
	m := &Metrics{
		forwarded: counter("forwarded_total", "Messages published and marked forwarded."),
		failed:    counter("failed_total", "Messages Publish did not accept (sent again), or rows that could not be read."),
		unmarked:  counter("unmarked_total", "Messages published but not marked forwarded (sent again)."),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: c.namespace, Subsystem: "outbox", Name: "forward_latency_seconds",
			Help: "Time from the insert into the outbox to the broker's acceptance.", Buckets: c.buckets}),
	}
	gauge := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(c.namespace, "outbox", name), help, nil, nil)
	}
	st := &statusCollector{ob: ob, db: db, timeout: c.timeout,
		backlog: gauge("backlog", "Messages not yet forwarded."),
		oldest:  gauge("oldest_age_seconds", "Age of the oldest unforwarded message (0 when none)."),
		relays:  gauge("relays", "Live relays."),
		up:      gauge("status_up", "1 when the scrape's status query succeeded, else 0."),
	}
	cols := []prometheus.Collector{m.forwarded, m.failed, m.unmarked, m.latency, st}
	for i, col := range cols {
		if err := reg.Register(col); err != nil {
			for _, done := range cols[:i] { // all or none: New may be called again
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("outboxprom: register: %w", err)
		}
	}
	return m, nil
}

// OnBatch returns the relay option that records each batch into m.
func (m *Metrics) OnBatch() outbox.RelayOption {
	return outbox.WithOnBatch(func(b outbox.BatchInfo) {
		m.forwarded.Add(float64(b.Forwarded))
		m.failed.Add(float64(b.Failed))
		m.unmarked.Add(float64(b.Unmarked))
		for _, l := range b.Latencies {
			m.latency.Observe(l.Seconds())
		}
	})
}

// statusCollector reads Outbox.Status at each scrape.
type statusCollector struct {
	ob                      *outbox.Outbox
	db                      *sql.DB
	timeout                 time.Duration
	backlog, oldest, relays *prometheus.Desc
	up                      *prometheus.Desc
}

func (s *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.backlog
	ch <- s.oldest
	ch <- s.relays
	ch <- s.up
}

func (s *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	st, err := s.ob.Status(ctx, s.db)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(s.backlog, prometheus.GaugeValue, float64(st.Backlog))
	ch <- prometheus.MustNewConstMetric(s.oldest, prometheus.GaugeValue, st.OldestAge.Seconds())
	ch <- prometheus.MustNewConstMetric(s.relays, prometheus.GaugeValue, float64(len(st.Relays)))
}
