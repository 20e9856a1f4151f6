package timeout_test

import (
	"testing"
	"time"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/timeout"
)

// TestNewRejectsInvalidDuration: a negative duration is rejected; 0 (off)
// and positive ones are accepted.
func TestNewRejectsInvalidDuration(t *testing.T) {
	for _, d := range []time.Duration{-1, -time.Second} {
		mw, err := timeout.New(d)
		if mw != nil {
			t.Errorf("New(%v) returned a middleware", d)
		}
		mwtest.WantInvalid(t, "timeout", "New", err, "New", d.String())
	}
	for _, d := range []time.Duration{0, time.Nanosecond, time.Hour} {
		if _, err := timeout.New(d); err != nil {
			t.Errorf("New(%v): %v", d, err)
		}
	}
}
