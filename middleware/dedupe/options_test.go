package dedupe_test

import (
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/dedupe"
)

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New fail with ErrInvalidOption naming it; so does a nil store.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []dedupe.Option
	}{
		{"WithTTL", []dedupe.Option{dedupe.WithTTL(0), dedupe.WithTTL(-time.Second)}},
		{"WithLease", []dedupe.Option{dedupe.WithLease(0), dedupe.WithLease(-time.Second)}},
		{"WithInProgressDelay", []dedupe.Option{dedupe.WithInProgressDelay(-time.Second)}},
		{"WithKeyFunc", []dedupe.Option{dedupe.WithKeyFunc(nil)}},
	} {
		for i, o := range tc.bad {
			mw, err := dedupe.New(dedupe.NewMemoryStore(), o)
			if mw != nil {
				t.Errorf("%s #%d: New returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "dedupe", tc.name, err, tc.name)
		}
	}
	_, err := dedupe.New(nil)
	mwtest.WantInvalid(t, "dedupe", "nil store", err, "New", "store")
	if _, err := dedupe.New(dedupe.NewMemoryStore(), dedupe.WithTTL(time.Nanosecond), dedupe.WithLease(time.Nanosecond),
		dedupe.WithInProgressDelay(0), dedupe.WithKeyFunc(func(m *messaging.Message) string { return m.ID }), nil); err != nil {
		t.Error(err)
	}
}
