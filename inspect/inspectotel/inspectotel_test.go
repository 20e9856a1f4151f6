package inspectotel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

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
	if _, err := inspectotel.Register(c, inspectotel.WithMeterProvider(mp), inspectotel.Topics("missing", "present")); err != nil {
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
