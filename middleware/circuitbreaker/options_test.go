package circuitbreaker_test

import (
	"math"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/circuitbreaker"
)

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New and NewBreaker fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []circuitbreaker.Option
	}{
		{"WithName", []circuitbreaker.Option{circuitbreaker.WithName("")}},
		{"WithConsecutiveFailures", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(0), circuitbreaker.WithConsecutiveFailures(-1), circuitbreaker.WithConsecutiveFailures(math.MaxUint32 + 1)}},
		{"WithOpenTimeout", []circuitbreaker.Option{circuitbreaker.WithOpenTimeout(0), circuitbreaker.WithOpenTimeout(-time.Second)}},
		{"WithHalfOpenRequests", []circuitbreaker.Option{circuitbreaker.WithHalfOpenRequests(0), circuitbreaker.WithHalfOpenRequests(-1), circuitbreaker.WithHalfOpenRequests(math.MaxUint32 + 1)}},
		{"WithIsFailure", []circuitbreaker.Option{circuitbreaker.WithIsFailure(nil)}},
		{"WithOnStateChange", []circuitbreaker.Option{circuitbreaker.WithOnStateChange(nil)}},
	} {
		for i, o := range tc.bad {
			b, err := circuitbreaker.NewBreaker(o)
			if b != nil {
				t.Errorf("%s #%d: NewBreaker returned a breaker with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "circuitbreaker", tc.name, err, tc.name)
			mw, err := circuitbreaker.New(o)
			if mw != nil {
				t.Errorf("%s #%d: New returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "circuitbreaker", tc.name, err, tc.name)
		}
	}
}

// TestOptionsValid: boundary values are accepted.
func TestOptionsValid(t *testing.T) {
	b, err := circuitbreaker.NewBreaker(
		circuitbreaker.WithName("payments"),
		circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithConsecutiveFailures(math.MaxUint32),
		circuitbreaker.WithOpenTimeout(time.Nanosecond),
		circuitbreaker.WithHalfOpenRequests(1),
		circuitbreaker.WithIsFailure(func(error) bool { return true }),
		circuitbreaker.WithOnStateChange(func(string, gobreaker.State, gobreaker.State) {}),
		nil,
	)
	if err != nil {
		t.Fatal(err)
	}
	if b.State() != gobreaker.StateClosed {
		t.Errorf("state %v, want closed", b.State())
	}
}
