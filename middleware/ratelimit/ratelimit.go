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

// New returns a middleware allowing r handler runs per second on average,
// with bursts of up to burst (at least 1).
func New(r rate.Limit, burst int) messaging.Middleware {
	return WithLimiter(rate.NewLimiter(r, max(burst, 1)))
}

// WithLimiter returns a middleware taking a token from l before each run.
func WithLimiter(l *rate.Limiter) messaging.Middleware {
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
	}
}
