package outboxprom_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
	"github.com/msgkit/messaging/outbox/outboxprom"
)

// unreachable is a connector that never connects: New must not use the
// database.
type unreachable struct{}

func (unreachable) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database in this test")
}
func (unreachable) Driver() driver.Driver { return nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New fail with ErrInvalidOption naming it; so do nil arguments.
func TestOptionsRejectInvalidValues(t *testing.T) {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	for _, tc := range []struct {
		name string
		bad  []outboxprom.Option
	}{
		{"WithNamespace", []outboxprom.Option{outboxprom.WithNamespace("1a"), outboxprom.WithNamespace("a-b")}},
		{"WithBuckets", []outboxprom.Option{outboxprom.WithBuckets(nil), outboxprom.WithBuckets([]float64{2, 1}), outboxprom.WithBuckets([]float64{1, 1}), outboxprom.WithBuckets([]float64{math.NaN()})}},
		{"WithScrapeTimeout", []outboxprom.Option{outboxprom.WithScrapeTimeout(0), outboxprom.WithScrapeTimeout(-time.Second)}},
	} {
		for i, o := range tc.bad {
			m, err := outboxprom.New(prometheus.NewRegistry(), ob, db, o)
			if m != nil {
				t.Errorf("%s #%d: New returned metrics with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "outboxprom", tc.name, err, tc.name)
		}
	}
	for _, args := range []struct {
		reg prometheus.Registerer
		ob  *outbox.Outbox
		db  *sql.DB
	}{{nil, ob, db}, {prometheus.NewRegistry(), nil, db}, {prometheus.NewRegistry(), ob, nil}} {
		_, err := outboxprom.New(args.reg, args.ob, args.db)
		mwtest.WantInvalid(t, "outboxprom", "nil argument", err, "New")
	}
	if _, err := outboxprom.New(prometheus.NewRegistry(), ob, db, outboxprom.WithNamespace(""), outboxprom.WithNamespace("app"),
		outboxprom.WithBuckets([]float64{0.1, 1}), outboxprom.WithScrapeTimeout(time.Millisecond), nil); err != nil {
		t.Error(err)
	}
}

// TestScrapeSurvivesDatabaseDown: with the database unreachable, gathering
// the registry still succeeds (an error there fails the whole /metrics
// response under promhttp's default, every other metric with it): the
// counters are there and status_up is 0.
func TestScrapeSurvivesDatabaseDown(t *testing.T) {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	reg := prometheus.NewRegistry()
	if _, err := outboxprom.New(reg, ob, db); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather with the database down: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if v, ok := got["messaging_outbox_status_up"]; !ok || v != 0 {
		t.Errorf("status_up = %v (present %v), want 0", v, ok)
	}
	if _, ok := got["messaging_outbox_forwarded_total"]; !ok {
		t.Errorf("forwarded_total missing: %v", got)
	}
	if _, ok := got["messaging_outbox_backlog"]; ok {
		t.Errorf("backlog exported without a status: %v", got)
	}
}

// TestFailedNewRegistersNothing: when one collector cannot be registered
// (its name is taken), New fails and leaves none of its collectors
// registered, so that a second New succeeds once the conflict is gone.
func TestFailedNewRegistersNothing(t *testing.T) {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	reg := prometheus.NewRegistry()
	taken := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "messaging", Subsystem: "outbox", Name: "unmarked_total", Help: "Messages published but not marked forwarded (sent again)."}) // the same help: Registry keeps a name's label names and help after Unregister
	reg.MustRegister(taken)
	if m, err := outboxprom.New(reg, ob, db); err == nil || m != nil {
		t.Fatalf("New with a collector's name taken: %v, %v; want an error", m, err)
	}
	reg.Unregister(taken)
	if _, err := outboxprom.New(reg, ob, db); err != nil {
		t.Errorf("New after the conflict was removed: %v, want nil (the failed New left collectors registered)", err)
	}
}

// TestNamespaceAndBuckets: the metrics are named under WithNamespace (or
// under none for ""), and the histogram has the buckets WithBuckets was
// given, even when the caller's slice changes after New.
func TestNamespaceAndBuckets(t *testing.T) {
	db := sql.OpenDB(unreachable{})
	t.Cleanup(func() { _ = db.Close() })
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL("app")))
	for ns, want := range map[string]string{"Zz_9": "Zz_9_outbox_forward_latency_seconds", "": "outbox_forward_latency_seconds"} {
		reg := prometheus.NewRegistry()
		b := []float64{0.1, 1}
		if _, err := outboxprom.New(reg, ob, db, outboxprom.WithNamespace(ns), outboxprom.WithBuckets(b)); err != nil {
			t.Fatalf("namespace %q: %v", ns, err)
		}
		b[1] = 2
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
			if mf.GetName() != want {
				continue
			}
			var bounds []float64
			for _, bk := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				bounds = append(bounds, bk.GetUpperBound())
			}
			if !slices.Equal(bounds, []float64{0.1, 1}) {
				t.Errorf("buckets %v, want [0.1 1] as given", bounds)
			}
		}
		if !slices.Contains(names, want) {
			t.Errorf("namespace %q: metrics %v, want %s among them", ns, names, want)
		}
	}
}
