package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/middleware/timeout"
)

// TestValidateIgnoresForeignAnswers: a middleware of the user's that
// refuses the probe message (an empty message, not one it would ever get),
// or panics on it, says nothing of the order: Validate returns nil, as its
// doc says (an error wrapping ErrMisordered, or nil), and still finds a
// misorder of this module's layers around it. Such a middleware can tell
// the probe by middleware.IsProbe and skip its side effects.
func TestValidateIgnoresForeignAnswers(t *testing.T) {
	probed := 0
	refuses := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			if middleware.IsProbe(ctx) {
				probed++
			}
			if len(m.Payload) == 0 {
				return messaging.Permanent(errors.New("empty payload"))
			}
			return next(ctx, m)
		}
	}
	panics := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			_ = m.Header["tenant"][0]
			return next(ctx, m)
		}
	}
	rt, err1 := retry.New(retry.WithInProcess())
	to, err2 := timeout.New(time.Second)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	for name, mws := range map[string][]messaging.Middleware{
		"refuses": {refuses, rt},
		"panics":  {panics},
	} {
		if err := middleware.Validate(mws...); err != nil {
			t.Errorf("%s: Validate = %v, want nil: the middleware's answer to the probe says nothing of the order", name, err)
		}
	}
	if probed != 1 {
		t.Errorf("the middleware saw IsProbe %d times, want 1", probed)
	}
	// A misorder is still found: the timeout outside the in-process retry.
	if err := middleware.Validate(to, rt, refuses); !errors.Is(err, middleware.ErrMisordered) {
		t.Errorf("Validate(timeout, retry) = %v, want ErrMisordered", err)
	}
}
