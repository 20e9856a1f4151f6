package otel_test

import (
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/otel"
)

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New, NewBatch and Publisher fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []otel.Option
	}{
		{"WithTracerProvider", []otel.Option{otel.WithTracerProvider(nil)}},
		{"WithPropagator", []otel.Option{otel.WithPropagator(nil)}},
		{"WithSystem", []otel.Option{otel.WithSystem("")}},
	} {
		for i, o := range tc.bad {
			mw, err := otel.New(o)
			if mw != nil {
				t.Errorf("%s #%d: New returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "otel", tc.name, err, tc.name)
			bmw, err := otel.NewBatch(o)
			if bmw != nil {
				t.Errorf("%s #%d: NewBatch returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "otel", tc.name, err, tc.name)
			p, err := otel.Publisher(mwtest.Memory(t), o)
			if p != nil {
				t.Errorf("%s #%d: Publisher returned a publisher with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "otel", tc.name, err, tc.name)
		}
	}
}

// TestConstructorsRejectInvalidArguments: Publisher rejects a nil
// publisher; valid options are accepted.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	_, err := otel.Publisher(nil)
	mwtest.WantInvalid(t, "otel", "Publisher(nil)", err, "Publisher", "publisher")
	opts := []otel.Option{otel.WithTracerProvider(sdktrace.NewTracerProvider()), otel.WithPropagator(propagation.TraceContext{}), otel.WithSystem("nats"), nil}
	if _, err := otel.New(opts...); err != nil {
		t.Error(err)
	}
	if _, err := otel.NewBatch(opts...); err != nil {
		t.Error(err)
	}
	if _, err := otel.Publisher(mwtest.Memory(t), opts...); err != nil {
		t.Error(err)
	}
}
