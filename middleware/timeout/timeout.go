// Package timeout bounds the time a handler may take for one attempt.
//
// The layer gives the handler a context that is done after the duration. It
// does not abandon a handler that ignores its context: running a handler on
// in the background while the message is redelivered would break per-key
// order and double the work, so the handler must honour ctx. An error
// returned after the deadline passed is wrapped with ErrTimeout (and stays
// retryable); a nil result after the deadline still counts as success.
//
// Put it inside retry, so that each attempt gets the full duration; outside
// an in-process retry it is rejected (see package middleware).
package timeout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// ErrTimeout is wrapped by the error of a handler that failed after its
// deadline passed.
var ErrTimeout = errors.New("timeout: handler deadline exceeded")

// New returns the timeout middleware. d 0 disables it (the layer then only
// passes the message on); a negative d is invalid (an error wrapping
// messaging.ErrInvalidOption).
func New(d time.Duration) (messaging.Middleware, error) {
	if d < 0 {
		return nil, fmt.Errorf("timeout: New(%v): must not be negative: %w", d, messaging.ErrInvalidOption)
	}
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Timeout})
			if d <= 0 || layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next(tctx, msg)
			if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w after %v: %w", ErrTimeout, d, err)
			}
			return err
		}
	}, nil
}
