// Package inspectotel exports the backlog of consumer groups, as a
// messaging.Inspector reads it from the broker, as OpenTelemetry observable
// gauges (go.opentelemetry.io/otel/metric). Only programs that import it
// depend on the OpenTelemetry metric API.
//
// At each collection the callback inspects its topics (those given with
// WithTopics, else every topic the client lists through messaging.TopicLister)
// and observes:
//
//	messaging.destination.messages        {message}  messages the broker retains
//	messaging.destination.size            By         their size
//	messaging.destination.partition.messages
//	                                      {message}  the same per partition
//	messaging.consumer.group.backlog      {message}  published, not yet
//	                                                 delivered to the group
//	messaging.consumer.group.in_flight    {message}  delivered, not yet settled
//	messaging.consumer.group.oldest_age   s          age of the oldest message
//	                                                 of the backlog (0 when
//	                                                 there is none)
//	messaging.consumer.group.redeliveries {delivery} redeliveries, as the
//	                                                 broker counts them
//	messaging.consumer.group.members      {consumer} connected group members
//	messaging.inspect.errors              {error}    failed inspections, a
//	                                                 counter
//
// with the attributes of the OpenTelemetry semantic conventions for
// messaging: messaging.system (the broker: "kafka", "rabbitmq", "nats",
// "redis", "mem"), messaging.destination.name (the topic),
// messaging.consumer.group.name (the group) and
// messaging.destination.partition.id. The semantic conventions define no
// backlog metrics, so the names extend their messaging namespace. A topic
// or group name that is not valid UTF-8 (a broker may list names this
// library did not give) is observed with its invalid bytes as U+FFFD, as
// OTLP requires.
//
// A figure the broker does not report (unknown in messaging.TopicStats) is
// not observed, never as 0. A failed inspection does not fail the
// collection: the other topics are observed, the error counter grows and
// the error goes to otel.Handle (the global error handler). Each
// collection's inspections are bounded by WithTimeout.
package inspectotel

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/inspection"
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/internal/utf8text"
)

// ScopeName is the instrumentation scope of the meter.
const ScopeName = "github.com/msgkit/messaging/inspect/inspectotel"

// DefaultTimeout bounds a collection's inspections unless WithTimeout says
// otherwise.
const DefaultTimeout = 5 * time.Second

// Option configures Register. Each checks its argument, and Register
// fails with the first error, which wraps messaging.ErrInvalidOption.
type Option func(*config) error

type config struct {
	mp      metric.MeterProvider
	topics  []string
	timeout time.Duration
}

// WithMeterProvider sets where the gauges are created (default the global
// provider, otel.GetMeterProvider(); must not be nil).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return optcheck.Invalid("inspectotel", "WithMeterProvider", "nil", "needs a meter provider")
		}
		c.mp = mp
		return nil
	}
}

// WithTopics sets the topics to inspect: at least one, each a valid name
// (messaging.ValidateName); a topic named twice is inspected once. Without
// it every topic the client lists is inspected at each collection, and a
// client that is no messaging.TopicLister observes nothing but the error.
// The callback keeps its own copy of names.
func WithTopics(names ...string) Option {
	return optcheck.Topics("inspectotel", "WithTopics", names, func(c *config) *[]string { return &c.topics })
}

// WithTimeout bounds the inspections of one collection (default
// DefaultTimeout; must be positive); the topics not inspected by then count
// as failed.
func WithTimeout(d time.Duration) Option {
	return optcheck.Positive("inspectotel", "WithTimeout", d, func(c *config) *time.Duration { return &c.timeout })
}

// System maps a broker (messaging.TopicStats.Broker, the URL scheme) to the
// messaging.system value of the semantic conventions (those without one in
// the conventions keep their scheme).
func System(broker string) string {
	switch broker {
	case "amqp", "amqps":
		return "rabbitmq"
	case "rediss":
		return "redis"
	}
	return broker
}

type gauges struct {
	insp    messaging.Inspector
	cfg     config
	errors  atomic.Int64
	topic   struct{ messages, size, partition metric.Int64ObservableGauge }
	group   struct{ backlog, inFlight, redeliveries, members metric.Int64ObservableGauge }
	age     metric.Float64ObservableGauge
	errorsC metric.Int64ObservableCounter
}

// Register creates the instruments and the callback that observes insp's
// backlog. Unregister the returned registration to stop observing (the
// instruments stay with the meter). The callback is safe for concurrent
// collections.
func Register(insp messaging.Inspector, opts ...Option) (metric.Registration, error) {
	if insp == nil {
		return nil, fmt.Errorf("inspectotel: Register: nil inspector: %w", messaging.ErrInvalidOption)
	}
	g := &gauges{insp: insp, cfg: config{timeout: DefaultTimeout}}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&g.cfg); err != nil {
			return nil, err
		}
	}
	if g.cfg.mp == nil {
		g.cfg.mp = otel.GetMeterProvider()
	}
	m := g.cfg.mp.Meter(ScopeName)
	var err error
	gauge := func(p *metric.Int64ObservableGauge, name, unit, desc string) {
		if err == nil {
			*p, err = m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		}
	}
	gauge(&g.topic.messages, "messaging.destination.messages", "{message}", "Messages the broker retains for the destination.")
	gauge(&g.topic.size, "messaging.destination.size", "By", "Size of the messages the broker retains for the destination.")
	gauge(&g.topic.partition, "messaging.destination.partition.messages", "{message}", "Messages the broker retains in the partition.")
	gauge(&g.group.backlog, "messaging.consumer.group.backlog", "{message}", "Messages published but not yet delivered to the consumer group.")
	gauge(&g.group.inFlight, "messaging.consumer.group.in_flight", "{message}", "Messages delivered to the consumer group and not yet settled.")
	gauge(&g.group.redeliveries, "messaging.consumer.group.redeliveries", "{delivery}", "Redeliveries to the consumer group, as the broker counts them.")
	gauge(&g.group.members, "messaging.consumer.group.members", "{consumer}", "Consumers (group members) connected.")
	if err == nil {
		g.age, err = m.Float64ObservableGauge("messaging.consumer.group.oldest_age", metric.WithUnit("s"),
			metric.WithDescription("Age of the oldest message not yet delivered to the consumer group (0 when none)."))
	}
	if err == nil {
		g.errorsC, err = m.Int64ObservableCounter("messaging.inspect.errors", metric.WithUnit("{error}"),
			metric.WithDescription("Failed inspections: listing the topics, or inspecting one."))
	}
	if err != nil {
		return nil, fmt.Errorf("inspectotel: %w", err)
	}
	return m.RegisterCallback(g.observe, g.topic.messages, g.topic.size, g.topic.partition,
		g.group.backlog, g.group.inFlight, g.group.redeliveries, g.group.members, g.age, g.errorsC)
}

// observe inspects the topics and observes their figures.
func (g *gauges) observe(ctx context.Context, o metric.Observer) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.timeout)
	defer cancel()
	fail := func(err error) {
		g.errors.Add(1)
		otel.Handle(fmt.Errorf("inspectotel: %w", err))
	}
	topics, err := inspection.Topics(ctx, g.insp, g.cfg.topics)
	if err != nil {
		fail(err)
	}
	for _, r := range inspection.Inspect(ctx, g.insp, topics) {
		if r.Err != nil {
			fail(r.Err)
			continue
		}
		g.observeTopic(o, r.Stats)
	}
	o.ObserveInt64(g.errorsC, g.errors.Load())
	return nil
}

func (g *gauges) observeTopic(o metric.Observer, st messaging.TopicStats) {
	count := func(inst metric.Int64ObservableGauge, c messaging.Count, attrs ...attribute.KeyValue) {
		if v, ok := c.Value(); ok {
			o.ObserveInt64(inst, v, metric.WithAttributes(attrs...))
		}
	}
	sys, dest := semconv.MessagingSystemKey.String(System(st.Broker)), semconv.MessagingDestinationName(utf8text.Valid(st.Topic))
	count(g.topic.messages, st.Messages, sys, dest)
	count(g.topic.size, st.Bytes, sys, dest)
	for _, p := range st.Partitions {
		count(g.topic.partition, p.Messages, sys, dest, semconv.MessagingDestinationPartitionID(strconv.Itoa(p.Partition)))
	}
	for _, gs := range st.Groups {
		attrs := []attribute.KeyValue{sys, dest, semconv.MessagingConsumerGroupName(utf8text.Valid(gs.Group))}
		count(g.group.backlog, gs.Backlog, attrs...)
		count(g.group.inFlight, gs.InFlight, attrs...)
		count(g.group.redeliveries, gs.Redeliveries, attrs...)
		count(g.group.members, gs.Consumers, attrs...)
		if d, ok := gs.OldestAge.Value(); ok {
			o.ObserveFloat64(g.age, d.Seconds(), metric.WithAttributes(attrs...))
		}
	}
}
