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
// With WithInProcess the layer loops itself: it calls the handler up to
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
// once, as is one that the WithRetryable option classifies as not retryable
// (wrapped in messaging.Permanent), and one that an inner dead-letter layer
// keeps for redelivery (its publish failed), even as the subscription stops.
// A panic in the handler is recovered and treated as an error wrapping
// messaging.ErrHandlerPanic. A RetryAfter delay set by the handler itself is
// kept instead of the computed backoff.
//
// # Stops and deadlines
//
// A handler that fails because its subscription is stopping has not failed
// an attempt. The consumers of this module mark their handler contexts, so
// such a stop (a context error, not Permanent, once the subscription's own
// context ended) is told apart from any other failure: broker mode returns
// it as it is and the in-process loop ends with an error wrapping the
// context's error and the handler's (whose RetryAfter delay still applies),
// never permanent; the subscription redelivers the message, and releases it
// at its last attempt rather than give it up. Every other failure counts,
// a context error included: a timeout layer outside a broker-mode retry
// (accepted, see package middleware) fails the attempt at its deadline, so
// the backoff and MaxAttempts apply. Without the mark (a consumer outside
// this module) a failure in a cancelled context is taken for a stop, one in
// a context whose deadline passed for a failed attempt. In process, the
// loop ends once ctx has ended, as no later attempt could run in it: a
// final failure is still given up, any other ends the loop as a stop does.
//
// Compose one retry layer per handler, inside deadletter and outside timeout;
// see package middleware for the order and what a wrong order does.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// Option configures New, Delay and SubscribeOptions. An Option given an
// invalid value makes them fail with an error wrapping
// messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	maxAttempts int
	initial     time.Duration
	max         time.Duration
	multiplier  float64
	jitter      float64
	inProcess   bool
	modeSet     string // the option that chose the mode, "" when none did
	retryable   func(error) bool
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("retry: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithMaxAttempts sets the number of handler runs in total, the first
// included (default 5). n must be at least 1 (1: no retry).
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithMaxAttempts", n, "must be at least 1")
		}
		c.maxAttempts = n
		return nil
	}
}

// WithBackoff sets the delay before the second attempt (initial) and the
// largest delay (max); each delay is the previous one times the multiplier
// (default 2), with jitter. Defaults 100ms and 30s. initial 0 means no
// delay; a negative initial, or a max below initial, is invalid.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) error {
		if initial < 0 {
			return invalid("WithBackoff", fmt.Sprintf("%v, %v", initial, max), "initial must not be negative")
		}
		if max < initial {
			return invalid("WithBackoff", fmt.Sprintf("%v, %v", initial, max), "max must not be below initial")
		}
		c.initial = initial
		c.max = max
		return nil
	}
}

// WithMultiplier sets the growth factor between delays (default 2; at
// least 1).
func WithMultiplier(f float64) Option {
	return func(c *config) error {
		if !(f >= 1) || math.IsInf(f, 0) {
			return invalid("WithMultiplier", f, "must be a finite number of at least 1")
		}
		c.multiplier = f
		return nil
	}
}

// WithJitter sets the randomization factor: each delay is picked uniformly
// in [d*(1-f), d*(1+f)] (default 0.5; 0 disables jitter; f must be in
// [0,1]).
func WithJitter(f float64) Option {
	return func(c *config) error {
		if !(f >= 0 && f <= 1) {
			return invalid("WithJitter", f, "must be between 0 and 1")
		}
		c.jitter = f
		return nil
	}
}

// setMode records that option name chose the mode; two options choosing
// it conflict.
func (c *config) setMode(name string, inProcess bool) error {
	if c.modeSet != "" && c.modeSet != name {
		return fmt.Errorf("retry: %s and %s conflict: both choose the mode, give one: %w", c.modeSet, name, messaging.ErrInvalidOption)
	}
	c.modeSet = name
	c.inProcess = inProcess
	return nil
}

// WithInProcess makes the layer loop in process instead of relying on the
// adapter's redelivery; see the package documentation for when to use it.
// It conflicts with WithModeFor.
func WithInProcess() Option {
	return func(c *config) error { return c.setMode("WithInProcess", true) }
}

// WithModeFor picks the mode for a client from its capabilities: in process
// (WithInProcess) for an adapter that does not redeliver — one that claims
// neither Groups nor AckDeadline, such as core NATS — and broker mode
// otherwise. It is a heuristic: the contract has no capability saying
// "nacked messages come back", so check the adapter's documentation when in
// doubt. It conflicts with WithInProcess.
func WithModeFor(caps messaging.Capabilities) Option {
	return func(c *config) error { return c.setMode("WithModeFor", !caps.Groups && !caps.AckDeadline) }
}

// WithRetryable classifies errors: an error for which f returns false is not
// retried (it is returned wrapped in messaging.Permanent). By default every
// error not marked permanent is retried. A nil f is invalid.
func WithRetryable(f func(error) bool) Option {
	return func(c *config) error {
		if f == nil {
			return invalid("WithRetryable", "nil", "needs a function")
		}
		c.retryable = f
		return nil
	}
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (*config, error) {
	c := &config{
		maxAttempts: DefaultMaxAttempts, initial: DefaultInitial, max: DefaultMax,
		multiplier: DefaultMultiplier, jitter: DefaultJitter,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
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
// (1-based), jitter included: for tests and for tuning. It fails as New does
// on an invalid option, and on an attempt below 1.
func Delay(attempt int, opts ...Option) (time.Duration, error) {
	if attempt < 1 {
		return 0, fmt.Errorf("retry: Delay: attempt %d: must be at least 1: %w", attempt, messaging.ErrInvalidOption)
	}
	c, err := newConfig(opts)
	if err != nil {
		return 0, err
	}
	return c.delay(attempt), nil
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
// In process (WithInProcess) it returns nil: the layer counts attempts
// itself, and the broker must not. It fails as New does on an invalid
// option.
func SubscribeOptions(opts ...Option) ([]messaging.SubscribeOption, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.inProcess {
		return nil, nil
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
	return out, nil
}

// New returns the retry middleware. See the package documentation. It
// applies opts in order and returns the first error.
func New(opts ...Option) (messaging.Middleware, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
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
	}, nil
}

// classify turns a failed attempt's error into the layer's result; final
// reports that no attempt follows.
func (c *config) classify(err error, attempt int) (out error, final bool) {
	switch {
	case layer.IsKept(err): // an inner dead-letter layer keeps the message
		return err, true
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
	if err == nil || interrupted(ctx, err) {
		// A stop: the subscription redelivers (or releases) it as it is.
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
		if interrupted(ctx, err) {
			return stopped(ctx, attempt, err)
		}
		out, final := c.classify(err, attempt)
		if final {
			return out
		}
		if ctx.Err() != nil {
			// ctx ended (a deadline): no further attempt can run in it.
			return stopped(ctx, attempt, err)
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
			return stopped(ctx, attempt, err)
		case <-timer.C:
		}
	}
}

// interrupted reports whether err, an attempt's failure in ctx, is the
// handler giving up because its subscription is stopping rather than a
// failed attempt (see "Stops and deadlines" in the package documentation).
func interrupted(ctx context.Context, err error) bool {
	switch {
	case messaging.IsPermanent(err) || layer.IsKept(err):
		return false // a verdict of the handler or of an inner layer: kept as it is
	case layer.Marked(ctx):
		return layer.Interrupted(ctx, err)
	}
	return errors.Is(ctx.Err(), context.Canceled)
}

// stopped is the in-process loop's result when ctx ended after attempt
// failed with err (neither Permanent nor kept by an inner layer): not
// permanent, so the adapter redelivers the message. It wraps ctx's error,
// so that a subscription whose stop ended ctx sees an interrupted handler
// (released, never given up, even at its last attempt), and err, so that
// the handler's own marks (a RetryAfter delay) still apply.
func stopped(ctx context.Context, attempt int, err error) error {
	if ctx.Err() == nil { // ctx's cancellation was cut off below the subscription's mark
		return fmt.Errorf("retry: stopped before attempt %d: %w", attempt+1, err)
	}
	return fmt.Errorf("retry: stopped before attempt %d: %w (last error: %w)", attempt+1, ctx.Err(), err)
}
