package retry_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/retry"
)

func wantInvalid(t *testing.T, what string, err error, names ...string) {
	t.Helper()
	mwtest.WantInvalid(t, "retry", what, err, names...)
}

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New, Delay and SubscribeOptions fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []retry.Option
	}{
		{"WithMaxAttempts", []retry.Option{retry.WithMaxAttempts(0), retry.WithMaxAttempts(-1)}},
		{"WithBackoff", []retry.Option{retry.WithBackoff(-time.Second, time.Second), retry.WithBackoff(time.Second, time.Millisecond)}},
		{"WithMultiplier", []retry.Option{retry.WithMultiplier(0.5), retry.WithMultiplier(-1), retry.WithMultiplier(math.NaN()), retry.WithMultiplier(math.Inf(1))}},
		{"WithJitter", []retry.Option{retry.WithJitter(-0.1), retry.WithJitter(1.1), retry.WithJitter(math.NaN())}},
		{"WithRetryable", []retry.Option{retry.WithRetryable(nil)}},
	} {
		for i, o := range tc.bad {
			mw, err := retry.New(o)
			if mw != nil {
				t.Errorf("%s #%d: New returned a middleware with the error %v", tc.name, i, err)
			}
			wantInvalid(t, tc.name, err, tc.name)
			_, err = retry.Delay(1, o)
			wantInvalid(t, tc.name+" (Delay)", err, tc.name)
			_, err = retry.SubscribeOptions(o)
			wantInvalid(t, tc.name+" (SubscribeOptions)", err, tc.name)
		}
	}
}

// TestOptionsConflict: the two options that choose the mode conflict.
func TestOptionsConflict(t *testing.T) {
	_, err := retry.New(retry.WithInProcess(), retry.WithModeFor(messaging.Capabilities{}))
	wantInvalid(t, "WithInProcess+WithModeFor", err, "WithInProcess", "WithModeFor")
	_, err = retry.New(retry.WithModeFor(messaging.Capabilities{Groups: true}), retry.WithInProcess())
	wantInvalid(t, "WithModeFor+WithInProcess", err, "WithInProcess", "WithModeFor")
}

// TestOptionsFirstErrorWins: options apply in order and the first error is
// returned as it is.
func TestOptionsFirstErrorWins(t *testing.T) {
	_, err := retry.New(retry.WithJitter(2), retry.WithMaxAttempts(0))
	wantInvalid(t, "first error", err, "WithJitter")
	if strings.Contains(err.Error(), "WithMaxAttempts") {
		t.Errorf("%q names a later option", err)
	}
}

// TestOptionsValid: boundary values are accepted and take effect.
func TestOptionsValid(t *testing.T) {
	opts := []retry.Option{
		retry.WithMaxAttempts(1), retry.WithMaxAttempts(3),
		retry.WithBackoff(0, 0), retry.WithBackoff(time.Millisecond, time.Millisecond),
		retry.WithMultiplier(1), retry.WithJitter(0), retry.WithJitter(1), retry.WithJitter(0),
		retry.WithRetryable(func(error) bool { return true }),
		retry.WithModeFor(messaging.Capabilities{Groups: true}), retry.WithModeFor(messaging.Capabilities{Groups: true}),
		nil,
	}
	if _, err := retry.New(opts...); err != nil {
		t.Fatal(err)
	}
	if d, err := retry.Delay(2, opts...); err != nil || d != time.Millisecond {
		t.Errorf("Delay(2) = %v, %v; want 1ms", d, err)
	}
	so, err := retry.SubscribeOptions(opts...)
	if err != nil || len(so) != 2 {
		t.Errorf("SubscribeOptions: %d options, %v; want 2", len(so), err)
	}
	if so, err := retry.SubscribeOptions(retry.WithInProcess(), retry.WithInProcess()); err != nil || so != nil {
		t.Errorf("in process: %v, %v; want none", so, err)
	}
	_, err = retry.Delay(0)
	wantInvalid(t, "Delay(0)", err, "Delay")
}
