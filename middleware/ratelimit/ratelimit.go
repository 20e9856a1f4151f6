// Package ratelimit limits how often a handler runs, with
// golang.org/x/time/rate.
//
// Each delivery waits for a token before the handler runs; the wait ends
// early with the context's (retryable) error when the subscription stops, so
// the message is redelivered. The limit is per middleware instance: share
// one instance between subscriptions to share the budget; it is not shared
// between processes. Put it inside retry, so each attempt takes a token.
package ratelimit

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// New returns a middleware allowing r handler runs per second on average
// (r must be positive; rate.Inf allows every run), with bursts of up to
// burst (at least 1). Invalid arguments are rejected with an error wrapping
// messaging.ErrInvalidOption.
func New(r rate.Limit, burst int) (messaging.Middleware, error) {
	if !(r > 0) {
		return nil, fmt.Errorf("ratelimit: New(%v, %d): the rate must be positive: %w", r, burst, messaging.ErrInvalidOption)
	}
	if burst < 1 {
		return nil, fmt.Errorf("ratelimit: New(%v, %d): the burst must be at least 1: %w", r, burst, messaging.ErrInvalidOption)
	}
	return FromLimiter(rate.NewLimiter(r, burst))
}

// FromLimiter returns a middleware taking a token from l before each run
// (share l to share the budget with other users of it). A nil l is invalid.
func FromLimiter(l *rate.Limiter) (messaging.Middleware, error) {
	if l == nil {
		return nil, fmt.Errorf("ratelimit: FromLimiter(nil): needs a limiter: %w", messaging.ErrInvalidOption)
	}
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.RateLimit})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			if err := l.Wait(ctx); err != nil {
				return fmt.Errorf("ratelimit: %w", err)
			}
			return next(ctx, msg)
		}
	}, nil
}
