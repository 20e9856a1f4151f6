package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
)

// chain wraps h with the configured middleware and the retry layer: a
// failed attempt before the last asks the adapter for redelivery after an
// exponential backoff (messaging.RetryAfter); the last one, or a Permanent
// error, is given up (messaging.Permanent), so the adapter does not
// redeliver it again.
func (cfg *config) chain(h messaging.Handler) (messaging.Handler, error) {
	h = messaging.Chain(h, cfg.mws...)
	return func(ctx context.Context, m *messaging.Message) error {
		err := h(ctx, m)
		switch {
		case err == nil, messaging.IsPermanent(err), ctx.Err() != nil:
			return err
		case m.Attempt >= cfg.maxAttempts:
			return messaging.Permanent(fmt.Errorf("queue: giving up after %d attempts: %w", m.Attempt, err))
		}
		if _, ok := messaging.RetryDelay(err); ok {
			return err
		}
		return messaging.RetryAfter(err, backoff(m.Attempt, cfg.initial, cfg.maxBackoff))
	}, nil
}

// backoff is initial * 2^(attempt-1), capped at max.
func backoff(attempt int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
