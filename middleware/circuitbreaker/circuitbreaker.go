// Package circuitbreaker stops calling a handler whose dependency is failing,
// using github.com/sony/gobreaker/v2.
//
// After ConsecutiveFailures failed handler runs in a row the breaker opens:
// for OpenTimeout messages are not handed to the handler but returned with a
// retryable error wrapping ErrOpen and a RetryAfter delay of OpenTimeout, so
// the adapter redelivers them later. Then a few trial runs (HalfOpenRequests)
// decide whether it closes again. By default permanent errors
// (messaging.Permanent: a bad message, not a sick dependency) and context
// cancellation do not count as failures.
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

// Option configures NewBreaker and New.
type Option func(*config)

type config struct {
	name          string
	failures      uint32
	openTimeout   time.Duration
	halfOpen      uint32
	isFailure     func(error) bool
	onStateChange func(name string, from, to gobreaker.State)
}

// Name names the breaker in state changes (default "handler").
func Name(s string) Option { return func(c *config) { c.name = s } }

// ConsecutiveFailures is how many failures in a row open the breaker
// (default 5).
func ConsecutiveFailures(n int) Option { return func(c *config) { c.failures = uint32(max(n, 1)) } }

// OpenTimeout is how long the breaker stays open before trying again
// (default 30s).
func OpenTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.openTimeout = d
		}
	}
}

// HalfOpenRequests is how many trial runs a half-open breaker allows
// (default 1); that many successes close it.
func HalfOpenRequests(n int) Option { return func(c *config) { c.halfOpen = uint32(max(n, 1)) } }

// IsFailure decides which handler errors count against the breaker.
func IsFailure(f func(error) bool) Option { return func(c *config) { c.isFailure = f } }

// OnStateChange is called when the breaker changes state.
func OnStateChange(f func(name string, from, to gobreaker.State)) Option {
	return func(c *config) { c.onStateChange = f }
}

func defaultIsFailure(err error) bool {
	return err != nil && !messaging.IsPermanent(err) && !errors.Is(err, context.Canceled)
}

// Breaker is a circuit breaker shared by the handlers it wraps. It is safe
// for concurrent use.
type Breaker struct {
	cb          *gobreaker.CircuitBreaker[struct{}]
	openTimeout time.Duration
}

// NewBreaker returns a closed breaker.
func NewBreaker(opts ...Option) *Breaker {
	c := config{name: "handler", failures: DefaultConsecutiveFailures, openTimeout: DefaultOpenTimeout, halfOpen: DefaultHalfOpenRequests, isFailure: defaultIsFailure}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	failures := c.failures
	isFailure := c.isFailure
	st := gobreaker.Settings{
		Name:          c.name,
		MaxRequests:   c.halfOpen,
		Timeout:       c.openTimeout,
		ReadyToTrip:   func(counts gobreaker.Counts) bool { return counts.ConsecutiveFailures >= failures },
		IsSuccessful:  func(err error) bool { return !isFailure(err) },
		OnStateChange: c.onStateChange,
	}
	return &Breaker{cb: gobreaker.NewCircuitBreaker[struct{}](st), openTimeout: c.openTimeout}
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
			_, err := b.cb.Execute(func() (struct{}, error) {
				herr = layer.Call(ctx, next, msg)
				return struct{}{}, herr
			})
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				return messaging.RetryAfter(fmt.Errorf("%w: %v", ErrOpen, err), b.openTimeout)
			}
			return herr
		}
	}
}

// New returns a middleware with a breaker of its own.
func New(opts ...Option) messaging.Middleware { return NewBreaker(opts...).Middleware() }
