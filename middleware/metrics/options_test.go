package metrics_test

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/metrics"
)

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New fail with ErrInvalidOption naming it, before anything is registered.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []metrics.Option
	}{
		{"WithNamespace", []metrics.Option{metrics.WithNamespace("1abc"), metrics.WithNamespace("a-b"), metrics.WithNamespace("a b"), metrics.WithNamespace("é")}},
		{"WithBuckets", []metrics.Option{metrics.WithBuckets(nil), metrics.WithBuckets([]float64{}), metrics.WithBuckets([]float64{1, 1}),
			metrics.WithBuckets([]float64{2, 1}), metrics.WithBuckets([]float64{math.NaN()})}},
	} {
		for i, o := range tc.bad {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg, o)
			if m != nil {
				t.Errorf("%s #%d: New returned metrics with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "metrics", tc.name, err, tc.name)
			if fams, _ := reg.Gather(); len(fams) != 0 {
				t.Errorf("%s #%d: %d families registered", tc.name, i, len(fams))
			}
		}
	}
}

// TestConstructorsRejectInvalidArguments: New rejects a nil registerer,
// Publisher a nil publisher; valid options are accepted.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	_, err := metrics.New(nil)
	mwtest.WantInvalid(t, "metrics", "New(nil)", err, "New", "registerer")
	m, err := metrics.New(prometheus.NewRegistry(), metrics.WithNamespace(""), metrics.WithNamespace("app_1"),
		metrics.WithBuckets([]float64{0.1}), metrics.WithBuckets([]float64{-1, 0, 1}), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Publisher(nil)
	if p != nil {
		t.Error("Publisher(nil) returned a publisher")
	}
	mwtest.WantInvalid(t, "metrics", "Publisher(nil)", err, "Publisher", "publisher")
}
