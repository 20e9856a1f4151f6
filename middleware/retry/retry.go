// Package retry retries failed handlers with exponential backoff and jitter,
// up to a maximum number of attempts.
//
// # Two modes
//
// By default (broker mode) the retry layer does not loop: the adapter
// redelivers a failed message and counts deliveries in Message.Attempt. On a
// failure with Attempt < MaxAttempts the layer returns
// messaging.RetryAfter(err, backoff(Attempt)), so the adapter redelivers after
// the delay (natively where the broker can delay, else the adapter holds the
// message back); on a failure with Attempt >= MaxAttempts it returns
// messaging.Permanent(err), so the adapter stops redelivering and a
// dead-letter layer outside takes the message. A handler that always fails
// therefore runs exactly MaxAttempts times in total, however many consumers
// share the group and across consumer restarts where the broker counts
// attempts (Capabilities.BrokerAttempts). Use broker mode with every
// subscription of a persistent adapter, and pass SubscribeOptions(opts...) to
// Subscribe so that the broker knows the policy too: it then stops
// redelivering by itself and, where it keeps a schedule
// (Capabilities.BrokerBackoff), retries a crashed consumer's message on the
// same backoff.
//
// With InProcess the layer loops itself: it calls the handler up to
// MaxAttempts times, waiting the backoff between calls (the wait ends early,
// with the context's error, when ctx is done), and sets Message.Attempt to
// the number of the call in progress. It returns messaging.Permanent after
// the last failure, so an adapter that redelivers does not multiply the
// attempts. Use it where nothing redelivers: a Stream read, core NATS
// without JetStream, a function called directly. It holds the message (and,
// with per-key order, its key) for the whole retry sequence, and a consumer
// crash in the middle loses the count.
//
// In both modes an error already marked messaging.Permanent is returned at
// once, as is one that the Retryable option classifies as not retryable
// (wrapped in messaging.Permanent). A panic in the handler is recovered and
// treated as an error wrapping messaging.ErrHandlerPanic. A RetryAfter delay
// set by the handler itself is kept instead of the computed backoff.
//
// Compose one retry layer per handler, inside deadletter and outside timeout;
// see package middleware for the order and what a wrong order does.
package retry

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// Defaults.
const (
	DefaultMaxAttempts = 5
	DefaultInitial     = 100 * time.Millisecond
	DefaultMax         = 30 * time.Second
	DefaultMultiplier  = 2.0
	DefaultJitter      = 0.5
)

// Option configures New.
type Option func(*config)

type config struct {
	maxAttempts int
	initial     time.Duration
	max         time.Duration
	multiplier  float64
	jitter      float64
	inProcess   bool
	retryable   func(error) bool
}

// MaxAttempts sets the number of handler runs in total, the first included
// (default 5). n < 1 is treated as 1: no retry.
func MaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = max(n, 1) } }

// Backoff sets the delay before the second attempt (initial) and the largest
// delay (max); each delay is the previous one times the multiplier (default
// 2), with jitter. Defaults 100ms and 30s. A non-positive initial means no
// delay; max is raised to initial when lower.
func Backoff(initial, max time.Duration) Option {
	return func(c *config) {
		c.initial = initial
		c.max = max
	}
}

// Multiplier sets the growth factor between delays (default 2; values below
// 1 are treated as 1).
func Multiplier(f float64) Option { return func(c *config) { c.multiplier = f } }

// Jitter sets the randomization factor: each delay is picked uniformly in
// [d*(1-f), d*(1+f)] (default 0.5; 0 disables jitter; clamped to [0,1]).
func Jitter(f float64) Option { return func(c *config) { c.jitter = f } }

// InProcess makes the layer loop in process instead of relying on the
// adapter's redelivery; see the package documentation for when to use it.
func InProcess() Option { return func(c *config) { c.inProcess = true } }

// For picks the mode for a client from its capabilities: InProcess for an
// adapter that does not redeliver — one that claims neither Groups nor
// AckDeadline, such as core NATS — and broker mode otherwise. It is a
// heuristic: the contract has no capability saying "nacked messages come
// back", so check the adapter's documentation when in doubt.
func For(caps messaging.Capabilities) Option {
	return func(c *config) { c.inProcess = !caps.Groups && !caps.AckDeadline }
}

// Retryable classifies errors: an error for which f returns false is not
// retried (it is returned wrapped in messaging.Permanent). By default every
// error not marked permanent is retried.
func Retryable(f func(error) bool) Option { return func(c *config) { c.retryable = f } }

func newConfig(opts []Option) config {
	c := config{
		maxAttempts: DefaultMaxAttempts, initial: DefaultInitial, max: DefaultMax,
		multiplier: DefaultMultiplier, jitter: DefaultJitter,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	c.initial = max(c.initial, 0)
	c.max = max(c.max, c.initial)
	c.multiplier = max(c.multiplier, 1)
	c.jitter = min(max(c.jitter, 0), 1)
	return c
}

// delay returns the backoff before the attempt after attempt (1-based).
func (c *config) delay(attempt int) time.Duration {
	if c.initial == 0 {
		return 0
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     c.initial,
		RandomizationFactor: c.jitter,
		Multiplier:          c.multiplier,
		MaxInterval:         c.max,
	}
	// The interval saturates at max long before 64 steps.
	d := b.NextBackOff()
	for i := 1; i < min(attempt, 64); i++ {
		d = b.NextBackOff()
	}
	return d
}

// Delay returns the backoff New(opts...) waits after a failed attempt
// (1-based), jitter included: for tests and for tuning.
func Delay(attempt int, opts ...Option) time.Duration {
	c := newConfig(opts)
	return c.delay(attempt)
}

// SubscribeOptions returns the subscribe options that push the broker-mode
// policy of New(opts...) down to the broker, to pass to Subscribe beside the
// middleware:
//
//   - RedeliveryBackoff with the backoff delays for attempts 1 to
//     MaxAttempts-1, without jitter (a broker schedule is fixed). Where the
//     broker keeps it (Capabilities.BrokerBackoff, e.g. JetStream BackOff), a
//     message whose consumer crashed is retried on the same schedule as one
//     whose handler failed.
//   - MaxAttempts(MaxAttempts+1), so the broker stops redelivering by itself.
//     The one delivery beyond the policy happens only when the last attempt
//     was not settled (its consumer crashed, or an outer dead-letter layer
//     could not publish): it lets the retry layer mark the message Permanent
//     and a dead-letter layer take it, instead of the broker dropping it.
//
// With InProcess it returns nil: the layer counts attempts itself, and the
// broker must not.
func SubscribeOptions(opts ...Option) []messaging.SubscribeOption {
	c := newConfig(opts)
	if c.inProcess {
		return nil
	}
	out := []messaging.SubscribeOption{messaging.MaxAttempts(c.maxAttempts + 1)}
	if c.initial > 0 && c.maxAttempts > 1 {
		c.jitter = 0
		delays := make([]time.Duration, c.maxAttempts-1)
		for i := range delays {
			delays[i] = c.delay(i + 1)
		}
		out = append(out, messaging.RedeliveryBackoff(delays...))
	}
	return out
}

// New returns the retry middleware. See the package documentation.
func New(opts ...Option) messaging.Middleware {
	c := newConfig(opts)
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			if _, ok := layer.Outer(ctx, layer.Retry); ok {
				return layer.Misordered("retry inside another retry layer: attempts would multiply; keep one")
			}
			if _, ok := layer.Outer(ctx, layer.Timeout); ok && c.inProcess {
				return layer.Misordered("timeout outside an in-process retry: the deadline would cover every attempt and wait; put timeout inside retry")
			}
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Retry, InProcess: c.inProcess, MaxAttempts: c.maxAttempts, Final: c.final})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			if c.inProcess {
				return c.loop(ctx, next, msg)
			}
			return c.once(ctx, next, msg)
		}
	}
}

// classify turns a failed attempt's error into the layer's result; final
// reports that no attempt follows.
func (c *config) classify(err error, attempt int) (out error, final bool) {
	switch {
	case messaging.IsPermanent(err):
		return err, true
	case c.retryable != nil && !c.retryable(err):
		return messaging.Permanent(fmt.Errorf("retry: not retryable: %w", err)), true
	case attempt >= c.maxAttempts:
		return messaging.Permanent(fmt.Errorf("retry: giving up after %d attempts: %w", attempt, err)), true
	}
	if _, ok := messaging.RetryDelay(err); ok {
		return err, false
	}
	return messaging.RetryAfter(err, c.delay(attempt)), false
}

// final reports whether a failed attempt is the last.
func (c *config) final(err error, attempt int) bool {
	return messaging.IsPermanent(err) || (c.retryable != nil && !c.retryable(err)) || attempt >= c.maxAttempts
}

func (c *config) once(ctx context.Context, next messaging.Handler, msg *messaging.Message) error {
	err := layer.Call(ctx, next, msg)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// The subscription is stopping: let the adapter redeliver as usual.
		return err
	}
	out, _ := c.classify(err, max(msg.Attempt, 1))
	return out
}

func (c *config) loop(ctx context.Context, next messaging.Handler, msg *messaging.Message) error {
	var timer *time.Timer
	for attempt := 1; ; attempt++ {
		msg.Attempt = attempt
		err := layer.Call(ctx, next, msg)
		if err == nil {
			return nil
		}
		out, final := c.classify(err, attempt)
		if final {
			return out
		}
		d, _ := messaging.RetryDelay(out)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("retry: stopped before attempt %d: %w (last error: %v)", attempt+1, ctx.Err(), err)
		case <-timer.C:
		}
	}
}
