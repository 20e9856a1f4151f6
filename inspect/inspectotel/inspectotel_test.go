package inspectotel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/inspect/inspectotel"
	"github.com/msgkit/messaging/internal/inspection/inspectiontest"
)

// collect reads every metric of the reader as "name{attrs}" -> value, and
// the instruments' units by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) (map[string]float64, map[string]string) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	values, units := map[string]float64{}, map[string]string{}
	key := func(name string, set attribute.Set) string {
		var kv []string
		for _, a := range set.ToSlice() {
			kv = append(kv, fmt.Sprintf("%s=%s", a.Key, a.Value.String()))
		}
		return fmt.Sprintf("%s%v", name, kv)
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != inspectotel.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			units[m.Name] = m.Unit
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					values[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					values[key(m.Name, p.Attributes)] = p.Value
				}
			case metricdata.Sum[int64]:
				if !d.IsMonotonic {
					t.Errorf("%s is not monotonic", m.Name)
				}
				for _, p := range d.DataPoints {
					values[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return values, units
}

// TestGauges: after a real publish, consume and acknowledge on the memory
// broker, a collection observes the broker's figures with the semantic
// conventions' attributes; a topic that is not there counts as an error and
// the others are still observed.
func TestGauges(t *testing.T) {
	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	bytes := inspectiontest.HeldBacklog(t, c, "orders")
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	reg, err := inspectotel.Register(c, inspectotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	values, units := collect(t, reader)
	topic := "[messaging.destination.name=orders messaging.system=mem]"
	work := "[messaging.consumer.group.name=work messaging.destination.name=orders messaging.system=mem]"
	idle := "[messaging.consumer.group.name=idle messaging.destination.name=orders messaging.system=mem]"
	want := map[string]float64{
		"messaging.destination.messages" + topic:       5,
		"messaging.destination.size" + topic:           float64(bytes),
		"messaging.consumer.group.backlog" + work:      2,
		"messaging.consumer.group.backlog" + idle:      5,
		"messaging.consumer.group.in_flight" + work:    2,
		"messaging.consumer.group.in_flight" + idle:    0,
		"messaging.consumer.group.redeliveries" + work: 0,
		"messaging.consumer.group.redeliveries" + idle: 0,
		"messaging.consumer.group.members" + work:      1,
		"messaging.consumer.group.members" + idle:      0,
		"messaging.inspect.errors[]":                   0,
	}
	for _, g := range []string{work, idle} {
		age, ok := values["messaging.consumer.group.oldest_age"+g]
		if !ok || age <= 0 || age > time.Minute.Seconds() {
			t.Errorf("oldest age of %s: %v (observed %v), want a positive age under a minute", g, age, ok)
		}
		delete(values, "messaging.consumer.group.oldest_age"+g)
	}
	if !maps.Equal(values, want) {
		t.Errorf("observed:\n%v\nwant:\n%v", values, want)
	}
	for name, unit := range map[string]string{"messaging.destination.size": "By", "messaging.consumer.group.oldest_age": "s",
		"messaging.consumer.group.backlog": "{message}", "messaging.inspect.errors": "{error}"} {
		if units[name] != unit {
			t.Errorf("unit of %s: %q, want %q", name, units[name], unit)
		}
	}

	// Unregistered: nothing more is observed.
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if values, _ := collect(t, reader); len(values) != 0 {
		t.Errorf("observed after Unregister: %v", values)
	}
}

// errorHandler records what otel.Handle receives.
type errorHandler struct {
	mu   sync.Mutex
	errs []error
}

func (h *errorHandler) Handle(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

// TestErrorsDoNotStopTheOthers: a topic that is not there is counted and
// handed to the error handler; the other topic is still observed.
func TestErrorsDoNotStopTheOthers(t *testing.T) {
	h := &errorHandler{}
	otel.SetErrorHandler(h)
	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Provision(t.Context(), "present", "g"); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	if _, err := inspectotel.Register(c, inspectotel.WithMeterProvider(mp), inspectotel.WithTopics("missing", "present")); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		values, _ := collect(t, reader)
		if got := values["messaging.inspect.errors[]"]; got != float64(round) {
			t.Errorf("round %d: errors %v, want %d", round, got, round)
		}
		if got, ok := values["messaging.consumer.group.backlog[messaging.consumer.group.name=g messaging.destination.name=present messaging.system=mem]"]; !ok || got != 0 {
			t.Errorf("round %d: backlog of present/g %v (observed %v), want 0", round, got, ok)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) != 2 || !slices.ContainsFunc(h.errs, func(err error) bool { return errors.Is(err, messaging.ErrTopicNotFound) }) {
		t.Errorf("handled errors %v, want ErrTopicNotFound twice", h.errs)
	}
}

func TestSystem(t *testing.T) {
	for broker, want := range map[string]string{"amqp": "rabbitmq", "amqps": "rabbitmq", "kafka": "kafka", "nats": "nats", "redis": "redis", "rediss": "redis", "mem": "mem"} {
		if got := inspectotel.System(broker); got != want {
			t.Errorf("System(%q) = %q, want %q", broker, got, want)
		}
	}
}

// reader returns a manual reader whose provider is shut down with the test.
func reader(t *testing.T) (*sdkmetric.ManualReader, inspectotel.Option) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return r, inspectotel.WithMeterProvider(mp)
}

// TestInvalidOptions: Register refuses a nil inspector and each option's
// invalid values with an error wrapping messaging.ErrInvalidOption that
// names the option, and registers nothing then.
func TestInvalidOptions(t *testing.T) {
	r, mp := reader(t)
	for _, tc := range []struct {
		name string
		insp messaging.Inspector
		opt  inspectotel.Option
	}{
		{"Register", nil, nil},
		{"WithMeterProvider", fixed{}, inspectotel.WithMeterProvider(nil)},
		{"WithTopics", fixed{}, inspectotel.WithTopics()},
		{"WithTopics", fixed{}, inspectotel.WithTopics("a", "")},
		{"WithTopics", fixed{}, inspectotel.WithTopics("a b")},
		{"WithTimeout", fixed{}, inspectotel.WithTimeout(0)},
		{"WithTimeout", fixed{}, inspectotel.WithTimeout(-time.Second)},
	} {
		reg, err := inspectotel.Register(tc.insp, mp, tc.opt)
		if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), tc.name) || reg != nil {
			t.Errorf("%s: Register = %v, %v; want nil and an error naming %s wrapping ErrInvalidOption", tc.name, reg, err, tc.name)
		} else {
			t.Log(err)
		}
	}
	if values, _ := collect(t, r); len(values) != 0 {
		t.Errorf("observed %v after refused registrations, want nothing", values)
	}
}

// fixed is a RabbitMQ broker whose figures are known exactly: each topic
// has two partitions and a group whose oldest message is 90 s old; or, when
// unknown is set, only the topic's message count is known.
type fixed struct{ unknown bool }

func (f fixed) Inspect(_ context.Context, topic string) (messaging.TopicStats, error) {
	one := messaging.KnownCount(1)
	if f.unknown {
		return messaging.TopicStats{Broker: "amqps", Topic: topic, Messages: messaging.KnownCount(7),
			Partitions: []messaging.PartitionStats{{Partition: 0}}, Groups: []messaging.GroupStats{{Group: "g"}}}, nil
	}
	return messaging.TopicStats{Broker: "amqps", Topic: topic, Messages: messaging.KnownCount(7), Bytes: messaging.KnownCount(70),
		Partitions: []messaging.PartitionStats{{Partition: 0, Messages: messaging.KnownCount(3)}, {Partition: 1, Messages: messaging.KnownCount(4)}},
		Groups: []messaging.GroupStats{{Group: "g", Backlog: messaging.KnownCount(2), InFlight: one, Redeliveries: messaging.KnownCount(5),
			Consumers: messaging.KnownCount(3), OldestAge: messaging.KnownAge(90 * time.Second)}},
	}, nil
}

// TestFixedFigures: every topic given is observed, each partition under
// its number, the age in seconds, each instrument with the unit the
// package documents.
func TestFixedFigures(t *testing.T) {
	r, mp := reader(t)
	if _, err := inspectotel.Register(fixed{}, mp, inspectotel.WithTopics("a", "b")); err != nil {
		t.Fatal(err)
	}
	values, units := collect(t, r)
	want := map[string]float64{"messaging.inspect.errors[]": 0}
	for _, topic := range []string{"a", "b"} {
		dest := "messaging.destination.name=" + topic + " messaging.system=rabbitmq"
		group := "[messaging.consumer.group.name=g " + dest + "]"
		want["messaging.destination.messages["+dest+"]"] = 7
		want["messaging.destination.size["+dest+"]"] = 70
		partition := "messaging.destination.partition.messages[messaging.destination.name=" + topic + " messaging.destination.partition.id="
		want[partition+"0 messaging.system=rabbitmq]"] = 3
		want[partition+"1 messaging.system=rabbitmq]"] = 4
		want["messaging.consumer.group.backlog"+group] = 2
		want["messaging.consumer.group.in_flight"+group] = 1
		want["messaging.consumer.group.redeliveries"+group] = 5
		want["messaging.consumer.group.members"+group] = 3
		want["messaging.consumer.group.oldest_age"+group] = 90
	}
	if !maps.Equal(values, want) {
		t.Errorf("observed:\n%v\nwant:\n%v", values, want)
	}
	wantUnits := map[string]string{
		"messaging.destination.messages": "{message}", "messaging.destination.size": "By",
		"messaging.destination.partition.messages": "{message}", "messaging.consumer.group.backlog": "{message}",
		"messaging.consumer.group.in_flight": "{message}", "messaging.consumer.group.oldest_age": "s",
		"messaging.consumer.group.redeliveries": "{delivery}", "messaging.consumer.group.members": "{consumer}",
		"messaging.inspect.errors": "{error}",
	}
	if !maps.Equal(units, wantUnits) {
		t.Errorf("units %v, want %v", units, wantUnits)
	}
}

// TestUnknownFiguresAreNotObserved: a figure the broker does not report
// is not observed, never as 0.
func TestUnknownFiguresAreNotObserved(t *testing.T) {
	r, mp := reader(t)
	if _, err := inspectotel.Register(fixed{unknown: true}, mp, inspectotel.WithTopics("a")); err != nil {
		t.Fatal(err)
	}
	values, _ := collect(t, r)
	want := map[string]float64{
		"messaging.destination.messages[messaging.destination.name=a messaging.system=rabbitmq]": 7,
		"messaging.inspect.errors[]": 0,
	}
	if !maps.Equal(values, want) {
		t.Errorf("observed %v, want only %v", values, want)
	}
}

// stuck is a broker that never answers.
type stuck struct{}

func (stuck) Inspect(ctx context.Context, _ string) (messaging.TopicStats, error) {
	<-ctx.Done()
	return messaging.TopicStats{}, ctx.Err()
}

// TestCollectionFailures: a broker that does not answer holds a collection
// for the Timeout, not longer, and its topics count as failed; a client
// that cannot list its topics, without Topics, counts one error.
func TestCollectionFailures(t *testing.T) {
	otel.SetErrorHandler(&errorHandler{}) // the failures are expected
	r, mp := reader(t)
	if _, err := inspectotel.Register(stuck{}, mp, inspectotel.WithTopics("a", "b"), inspectotel.WithTimeout(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	collected := make(chan error, 1)
	var rm metricdata.ResourceMetrics
	go func() { collected <- r.Collect(context.Background(), &rm) }()
	select {
	case err := <-collected:
		if err != nil {
			t.Fatal(err)
		}
		var errs []int64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "messaging.inspect.errors" {
					for _, p := range d.DataPoints {
						errs = append(errs, p.Value)
					}
				}
			}
		}
		if !slices.Equal(errs, []int64{2}) {
			t.Errorf("errors %v after a collection that timed out on two topics, want [2]", errs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("collection still waiting for the broker after 10s, with a timeout of 50ms")
	}

	r, mp = reader(t)
	if _, err := inspectotel.Register(stuck{}, mp); err != nil { // stuck is no TopicLister
		t.Fatal(err)
	}
	if values, _ := collect(t, r); !maps.Equal(values, map[string]float64{"messaging.inspect.errors[]": 1}) {
		t.Errorf("observed %v for a client that cannot list its topics, want one error alone", values)
	}
}

// TestTopicsKeepsItsOwnList: the callback inspects the topics Topics was
// given, at every collection, even when the caller's slice changes
// afterwards.
func TestTopicsKeepsItsOwnList(t *testing.T) {
	r, mp := reader(t)
	names := []string{"a"}
	if _, err := inspectotel.Register(fixed{unknown: true}, mp, inspectotel.WithTopics(names...)); err != nil {
		t.Fatal(err)
	}
	names[0] = "b"
	values, _ := collect(t, r)
	if _, ok := values["messaging.destination.messages[messaging.destination.name=a messaging.system=rabbitmq]"]; !ok || len(values) != 2 {
		t.Errorf("observed %v, want topic a's messages and the errors", values)
	}
}

// badGroup is fixed with a group name that is not valid UTF-8.
type badGroup struct{ fixed }

func (b badGroup) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	st, err := b.fixed.Inspect(ctx, topic)
	st.Groups[0].Group = "g\xff"
	return st, err
}

// Topics lists a name that is not valid UTF-8 (WithTopics refuses it).
func (badGroup) Topics(context.Context) ([]string, error) { return []string{"t\xfe"}, nil }

// TestNamesAreValidUTF8: a topic or group whose name is not valid UTF-8 (a
// broker may list names this library did not give) is observed with the
// invalid bytes replaced: OTLP carries attribute values as protobuf
// strings, and an exporter fails the whole batch of metrics holding one
// that is not UTF-8.
func TestNamesAreValidUTF8(t *testing.T) {
	r, mp := reader(t)
	if _, err := inspectotel.Register(badGroup{}, mp); err != nil {
		t.Fatal(err)
	}
	values, _ := collect(t, r)
	if len(values) < 2 {
		t.Fatalf("observed %v, want the topic's and the group's figures", values)
	}
	for k := range values {
		if !utf8.ValidString(k) {
			t.Errorf("observed %q: an attribute value is not valid UTF-8", k)
		}
	}
	if _, ok := values["messaging.consumer.group.backlog[messaging.consumer.group.name=g\uFFFD messaging.destination.name=t\uFFFD messaging.system=rabbitmq]"]; !ok {
		t.Errorf("observed %v, want the group's backlog under g\uFFFD of t\uFFFD", slices.Sorted(maps.Keys(values)))
	}
}
