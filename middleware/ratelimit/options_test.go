package ratelimit_test

import (
	"fmt"
	"math"
	"testing"

	"golang.org/x/time/rate"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/ratelimit"
)

// TestNewRejectsInvalidArguments: a rate that is not positive, a burst
// below 1 and a nil limiter are rejected.
func TestNewRejectsInvalidArguments(t *testing.T) {
	for _, tc := range []struct {
		r     rate.Limit
		burst int
		names []string
	}{
		{0, 1, []string{"New", "rate"}},
		{-1, 1, []string{"New", "rate"}},
		{rate.Limit(math.NaN()), 1, []string{"New", "rate"}},
		{1, 0, []string{"New", "burst"}},
		{1, -1, []string{"New", "burst"}},
	} {
		mw, err := ratelimit.New(tc.r, tc.burst)
		if mw != nil {
			t.Errorf("New(%v, %d) returned a middleware", tc.r, tc.burst)
		}
		mwtest.WantInvalid(t, "ratelimit", fmt.Sprintf("New(%v, %d)", tc.r, tc.burst), err, tc.names...)
	}
	_, err := ratelimit.FromLimiter(nil)
	mwtest.WantInvalid(t, "ratelimit", "FromLimiter(nil)", err, "FromLimiter")
	for _, r := range []rate.Limit{rate.Inf, 0.001, 100} {
		if _, err := ratelimit.New(r, 1); err != nil {
			t.Errorf("New(%v, 1): %v", r, err)
		}
	}
	if _, err := ratelimit.FromLimiter(rate.NewLimiter(1, 1)); err != nil {
		t.Error(err)
	}
}
