// Package inspectprom exports the backlog of consumer groups, as a
// messaging.Inspector reads it from the broker, to Prometheus
// (github.com/prometheus/client_golang). Only programs that import it
// depend on client_golang.
//
// At each scrape the collector inspects its topics (those given with
// WithTopics, else every topic the client lists through messaging.TopicLister)
// and exports, with <ns> the namespace ("messaging" by default):
//
//	<ns>_topic_messages{broker,topic}               messages the broker retains
//	<ns>_topic_bytes{broker,topic}                  their size
//	<ns>_topic_partition_messages{broker,topic,partition}
//	                                                the same per partition
//	<ns>_group_backlog_messages{broker,topic,group} published, not yet
//	                                                delivered to the group
//	<ns>_group_in_flight_messages{broker,topic,group}
//	                                                delivered, not yet settled
//	<ns>_group_oldest_age_seconds{broker,topic,group}
//	                                                age of the oldest message
//	                                                of the backlog (0 when
//	                                                there is none)
//	<ns>_group_redeliveries{broker,topic,group}     redeliveries, as the
//	                                                broker counts them
//	<ns>_group_consumers{broker,topic,group}        connected group members
//	<ns>_inspect_up                                 1 when every inspection of
//	                                                the scrape succeeded, else 0
//	<ns>_inspect_errors_total                       failed inspections (listing
//	                                                the topics, or one topic)
//	<ns>_inspect_duration_seconds                   how long the scrape's
//	                                                inspections took
//
// All are gauges but the errors counter. broker is the adapter's URL scheme
// (messaging.TopicStats.Broker). A figure the broker does not report
// (unknown in messaging.TopicStats) is left out, never exported as 0; see
// each adapter's Inspect for what it reports. Redeliveries are a gauge
// because not every broker keeps a count that only grows.
//
// A failed inspection does not fail the scrape: the topics that could be
// inspected are exported, <ns>_inspect_up is 0, the error counter grows and
// the failures are logged, one Warn per scrape however many topics failed.
// Each scrape is bounded by WithScrapeTimeout.
//
// Several collectors (one per client, say) can share a registry when each
// has its own WithConstLabels; with the same labels the second registration
// fails, as its metrics would collide.
package inspectprom

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/inspection"
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/internal/utf8text"
)

// DefaultScrapeTimeout bounds a scrape's inspections unless WithScrapeTimeout
// says otherwise.
const DefaultScrapeTimeout = 5 * time.Second

// Option configures New. Each checks its argument, and New fails with
// the first error, which wraps messaging.ErrInvalidOption.
type Option func(*config) error

type config struct {
	namespace string
	topics    []string
	timeout   time.Duration
	logger    *slog.Logger
	labels    prometheus.Labels
}

// WithNamespace sets the metric name prefix (default "messaging"; "" for
// none). It must be a valid Prometheus name: a letter or underscore, then
// letters, digits and underscores.
func WithNamespace(ns string) Option {
	return optcheck.PrometheusNamespace("inspectprom", ns, func(c *config) *string { return &c.namespace })
}

// WithTopics sets the topics to inspect: at least one, each a valid name
// (messaging.ValidateName); a topic named twice is inspected once. Without
// it the collector inspects every topic the client lists at each scrape,
// and fails (inspect_up 0) when the client is no messaging.TopicLister.
// The collector keeps its own copy of names.
func WithTopics(names ...string) Option {
	return optcheck.Topics("inspectprom", "WithTopics", names, func(c *config) *[]string { return &c.topics })
}

// WithScrapeTimeout bounds the inspections of one scrape (default
// DefaultScrapeTimeout; must be positive); the topics not inspected by then
// count as failed.
func WithScrapeTimeout(d time.Duration) Option {
	return optcheck.Positive("inspectprom", "WithScrapeTimeout", d, func(c *config) *time.Duration { return &c.timeout })
}

// WithLogger sets where failed inspections are logged (default
// slog.Default(); must not be nil).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return optcheck.Invalid("inspectprom", "WithLogger", "nil", "needs a logger")
		}
		c.logger = l
		return nil
	}
}

// WithConstLabels adds labels with fixed values to every metric of the
// collector, so that collectors of several clients can be registered in one
// registry (WithConstLabels(prometheus.Labels{"client": "orders"})). Each
// name must be a valid Prometheus label name not starting with "__" and not
// one of the collector's own (broker, topic, group, partition), each value
// valid UTF-8. The collector keeps its own copy of labels.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(c *config) error {
		for _, name := range slices.Sorted(maps.Keys(labels)) {
			switch {
			case name == "" || !optcheck.PrometheusName(name) || strings.HasPrefix(name, "__"):
				return optcheck.Invalid("inspectprom", "WithConstLabels", strconv.Quote(name), "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
			case slices.Contains(ownLabels, name):
				return optcheck.Invalid("inspectprom", "WithConstLabels", strconv.Quote(name), "the collector's own label")
			case !utf8.ValidString(labels[name]):
				return optcheck.Invalid("inspectprom", "WithConstLabels", strconv.Quote(name), "value not valid UTF-8")
			}
		}
		c.labels = maps.Clone(labels)
		return nil
	}
}

// ownLabels are the labels of the collector's metrics.
var ownLabels = []string{"broker", "topic", "group", "partition"}

// Collector is a prometheus.Collector that inspects the broker at each
// scrape. It is safe for concurrent use; concurrent scrapes inspect
// concurrently.
type Collector struct {
	insp messaging.Inspector
	cfg  config

	messages, bytes, partitionMessages                    *prometheus.Desc
	backlog, inFlight, oldestAge, redeliveries, consumers *prometheus.Desc
	up, errorsTotal, duration                             *prometheus.Desc
	errors                                                atomic.Uint64
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a collector of insp's backlog; register it with a
// prometheus.Registerer. It fails, with an error wrapping
// messaging.ErrInvalidOption, for a nil insp or an invalid option (a nil
// Option is ignored).
func New(insp messaging.Inspector, opts ...Option) (*Collector, error) {
	if insp == nil {
		return nil, fmt.Errorf("inspectprom: New: nil inspector: %w", messaging.ErrInvalidOption)
	}
	cfg := config{namespace: "messaging", timeout: DefaultScrapeTimeout, logger: slog.Default()}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	desc := func(sub, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(cfg.namespace, sub, name), help, labels, cfg.labels)
	}
	topic := []string{"broker", "topic"}
	group := []string{"broker", "topic", "group"}
	return &Collector{insp: insp, cfg: cfg,
		messages:          desc("topic", "messages", "Messages the broker retains for the topic.", topic...),
		bytes:             desc("topic", "bytes", "Size of the messages the broker retains for the topic.", topic...),
		partitionMessages: desc("topic", "partition_messages", "Messages the broker retains in the partition.", "broker", "topic", "partition"),
		backlog:           desc("group", "backlog_messages", "Messages published but not yet delivered to the group.", group...),
		inFlight:          desc("group", "in_flight_messages", "Messages delivered to the group's consumers and not yet settled.", group...),
		oldestAge:         desc("group", "oldest_age_seconds", "Age of the oldest message not yet delivered to the group (0 when none).", group...),
		redeliveries:      desc("group", "redeliveries", "Redeliveries to the group, as the broker counts them.", group...),
		consumers:         desc("group", "consumers", "Consumers (group members) connected.", group...),
		up:                desc("inspect", "up", "1 when every inspection of this scrape succeeded, else 0."),
		errorsTotal:       desc("inspect", "errors_total", "Failed inspections: listing the topics, or inspecting one."),
		duration:          desc("inspect", "duration_seconds", "Time the inspections of this scrape took."),
	}, nil
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.messages, c.bytes, c.partitionMessages, c.backlog, c.inFlight,
		c.oldestAge, c.redeliveries, c.consumers, c.up, c.errorsTotal, c.duration} {
		ch <- d
	}
}

// Collect inspects the topics and sends their figures.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	start := time.Now()
	var failed []string // topics, "" for the listing
	var first error
	fail := func(topic string, err error) {
		if first == nil {
			first = err
		}
		failed = append(failed, topic)
		c.errors.Add(1)
	}
	topics, err := inspection.Topics(ctx, c.insp, c.cfg.topics)
	if err != nil {
		fail("", err)
	}
	// A series twice, or a label that is not UTF-8, would fail the whole
	// scrape (every metric of the registry): a topic or group named twice
	// (by a TopicLister or WithTopics) is exported once, and invalid bytes
	// become U+FFFD.
	seen := map[string]bool{}
	for _, r := range inspection.Inspect(ctx, c.insp, topics) {
		if r.Err != nil {
			fail(r.Topic, r.Err)
			continue
		}
		if key := label(r.Stats.Broker) + "\x00" + label(r.Stats.Topic); !seen[key] {
			seen[key] = true
			c.collectTopic(ch, r.Stats)
		}
	}
	up := 1.0
	if len(failed) > 0 {
		up = 0
		// One line a scrape, not one a topic: a broker that is down fails
		// every topic at every scrape.
		const named = 10
		c.cfg.logger.Warn("inspectprom: inspection failed", "failed", len(failed),
			"topics", failed[:min(len(failed), named)], "error", first)
	}
	ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, time.Since(start).Seconds())
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.errorsTotal, prometheus.CounterValue, float64(c.errors.Load()))
}

func (c *Collector) collectTopic(ch chan<- prometheus.Metric, st messaging.TopicStats) {
	count := func(d *prometheus.Desc, n messaging.Count, labels ...string) {
		if v, ok := n.Value(); ok {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
		}
	}
	broker, topic := label(st.Broker), label(st.Topic)
	count(c.messages, st.Messages, broker, topic)
	count(c.bytes, st.Bytes, broker, topic)
	partitions := map[int]bool{}
	for _, p := range st.Partitions {
		if !partitions[p.Partition] {
			partitions[p.Partition] = true
			count(c.partitionMessages, p.Messages, broker, topic, strconv.Itoa(p.Partition))
		}
	}
	groups := map[string]bool{}
	for _, g := range st.Groups {
		group := label(g.Group)
		if groups[group] {
			continue
		}
		groups[group] = true
		labels := []string{broker, topic, group}
		count(c.backlog, g.Backlog, labels...)
		count(c.inFlight, g.InFlight, labels...)
		count(c.redeliveries, g.Redeliveries, labels...)
		count(c.consumers, g.Consumers, labels...)
		if d, ok := g.OldestAge.Value(); ok {
			ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, d.Seconds(), labels...)
		}
	}
}

// label is s as a label value: Prometheus requires UTF-8, and
// MustNewConstMetric panics on anything else.
func label(s string) string { return utf8text.Valid(s) }
