// Package circuitbreaker stops calling a handler whose dependency is failing,
// using github.com/sony/gobreaker/v2.
//
// After WithConsecutiveFailures failed handler runs in a row the breaker opens:
// for WithOpenTimeout messages are not handed to the handler but returned with a
// retryable error wrapping ErrOpen and a RetryAfter delay of WithOpenTimeout, so
// the adapter redelivers them later. Then a few trial runs (WithHalfOpenRequests)
// decide whether it closes again.
//
// A handler run that returns nil is a success. A handler error is a failure
// when WithIsFailure's function says so (by default every error but a
// permanent one, messaging.Permanent: a bad message, not a sick dependency,
// and context cancellation); any other error counts neither way: it neither
// opens nor closes the breaker, nor ends a run of consecutive failures, and a
// half-open breaker lets another trial run in its place.
//
// A rejected delivery still counts as an attempt where the broker counts
// them; give the retry layer enough attempts (or a long enough backoff) to
// outlast an open breaker, or the message reaches the dead-letter topic.
// Put the breaker inside retry.
package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// ErrOpen is wrapped by the error returned for a message the open (or
// half-open and busy) breaker did not let through.
var ErrOpen = errors.New("circuitbreaker: open")

// Defaults.
const (
	DefaultConsecutiveFailures = 5
	DefaultOpenTimeout         = 30 * time.Second
	DefaultHalfOpenRequests    = 1
)

// Option configures NewBreaker and New. An Option given an invalid value
// makes them fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type Option func(*config) error

type config struct {
	name          string
	failures      uint32
	openTimeout   time.Duration
	halfOpen      uint32
	isFailure     func(error) bool
	onStateChange func(name string, from, to gobreaker.State)
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("circuitbreaker: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// count checks a count option's argument.
func count(name string, n int) (uint32, error) {
	if n < 1 || n > math.MaxUint32 {
		return 0, invalid(name, n, "must be between 1 and 2^32-1")
	}
	return uint32(n), nil
}

// WithName names the breaker in state changes (default "handler"; must not
// be empty).
func WithName(s string) Option {
	return func(c *config) error {
		if s == "" {
			return invalid("WithName", `""`, "must not be empty")
		}
		c.name = s
		return nil
	}
}

// WithConsecutiveFailures is how many failures in a row open the breaker
// (default 5; at least 1).
func WithConsecutiveFailures(n int) Option {
	return func(c *config) (err error) {
		c.failures, err = count("WithConsecutiveFailures", n)
		return err
	}
}

// WithOpenTimeout is how long the breaker stays open before trying again
// (default 30s; must be positive).
func WithOpenTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithOpenTimeout", d, "must be positive")
		}
		c.openTimeout = d
		return nil
	}
}

// WithHalfOpenRequests is how many trial runs a half-open breaker allows
// (default 1; at least 1); that many successes close it.
func WithHalfOpenRequests(n int) Option {
	return func(c *config) (err error) {
		c.halfOpen, err = count("WithHalfOpenRequests", n)
		return err
	}
}

// WithIsFailure decides which handler errors count against the breaker
// (default: every error but a permanent one and context.Canceled). f is
// called with the non-nil error of a handler run only: a run returning nil
// is a success. An error f reports false for counts neither as a failure nor
// as a success (see the package doc). A nil f is invalid.
func WithIsFailure(f func(error) bool) Option {
	return func(c *config) error {
		if f == nil {
			return invalid("WithIsFailure", "nil", "needs a function")
		}
		c.isFailure = f
		return nil
	}
}

// WithOnStateChange is called when the breaker changes state. A nil f is
// invalid.
func WithOnStateChange(f func(name string, from, to gobreaker.State)) Option {
	return func(c *config) error {
		if f == nil {
			return invalid("WithOnStateChange", "nil", "needs a function")
		}
		c.onStateChange = f
		return nil
	}
}

func defaultIsFailure(err error) bool {
	return !messaging.IsPermanent(err) && !errors.Is(err, context.Canceled)
}

// Breaker is a circuit breaker shared by the handlers it wraps. It is safe
// for concurrent use.
type Breaker struct {
	cb          *gobreaker.CircuitBreaker[struct{}]
	openTimeout time.Duration
}

// NewBreaker returns a closed breaker. It applies opts in order and returns
// the first error.
func NewBreaker(opts ...Option) (*Breaker, error) {
	c := config{name: "handler", failures: DefaultConsecutiveFailures, openTimeout: DefaultOpenTimeout, halfOpen: DefaultHalfOpenRequests, isFailure: defaultIsFailure}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	failures := c.failures
	isFailure := c.isFailure
	// gobreaker asks IsExcluded, then IsSuccessful, after every run, with
	// nil after a success: nil never reaches isFailure (the user's).
	st := gobreaker.Settings{
		Name:          c.name,
		MaxRequests:   c.halfOpen,
		Timeout:       c.openTimeout,
		ReadyToTrip:   func(counts gobreaker.Counts) bool { return counts.ConsecutiveFailures >= failures },
		IsExcluded:    func(err error) bool { return err != nil && !isFailure(err) },
		IsSuccessful:  func(err error) bool { return err == nil },
		OnStateChange: c.onStateChange,
	}
	return &Breaker{cb: gobreaker.NewCircuitBreaker[struct{}](st), openTimeout: c.openTimeout}, nil
}

// State is the breaker's current state.
func (b *Breaker) State() gobreaker.State { return b.cb.State() }

// Middleware returns a middleware guarding handlers with b.
func (b *Breaker) Middleware() messaging.Middleware {
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.CircuitBreaker})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			var herr error
			ran := false
			_, err := b.cb.Execute(func() (struct{}, error) {
				ran = true
				herr = layer.Call(ctx, next, msg)
				return struct{}{}, herr
			})
			if !ran {
				// The breaker refused the run (gobreaker.ErrOpenState or
				// ErrTooManyRequests). Once the handler ran, its error is
				// returned as it is, even one wrapping those errors (a
				// breaker of its own).
				return messaging.RetryAfter(fmt.Errorf("%w: %v", ErrOpen, err), b.openTimeout)
			}
			return herr
		}
	}
}

// New returns a middleware with a breaker of its own. It fails as
// NewBreaker does.
func New(opts ...Option) (messaging.Middleware, error) {
	b, err := NewBreaker(opts...)
	if err != nil {
		return nil, err
	}
	return b.Middleware(), nil
}
