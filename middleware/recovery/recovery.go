// Package recovery turns a handler panic into an error, so the layers around
// it (retry, dead-letter, metrics, logging) see a failure instead of an
// unwinding stack.
//
// Adapters already recover panics, but only outside every middleware: a
// panic skips whatever the outer layers do after the handler returns. The
// retry and deadletter layers recover panics themselves; put recovery
// innermost (just around the handler) so the others, such as metrics and
// logging, also see the failure.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// Option configures New. An Option given an invalid value makes New fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	onPanic   func(ctx context.Context, msg *messaging.Message, value any, stack []byte)
	permanent bool
}

// WithOnPanic calls f with the panic value and stack of every recovered
// panic (for logging or alerting). f must not panic; a nil f is invalid.
func WithOnPanic(f func(ctx context.Context, msg *messaging.Message, value any, stack []byte)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("recovery: WithOnPanic(nil): needs a function: %w", messaging.ErrInvalidOption)
		}
		c.onPanic = f
		return nil
	}
}

// WithPermanent makes a panic a permanent failure (not redelivered;
// dead-lettered by a deadletter layer outside). By default a panic is
// retryable, like any other error.
func WithPermanent() Option { return func(c *config) error { c.permanent = true; return nil } }

// New returns the recovery middleware. A recovered panic becomes an error
// wrapping messaging.ErrHandlerPanic, with the value and the stack in its
// text. It applies opts in order and returns the first error.
func New(opts ...Option) (messaging.Middleware, error) {
	var c config
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) (err error) {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Recovery})
			defer func() {
				r := recover()
				if r == nil {
					return
				}
				stack := debug.Stack()
				if c.onPanic != nil {
					c.onPanic(ctx, msg, r, stack)
				}
				if e, ok := r.(error); ok && errors.Is(e, messaging.ErrHandlerPanic) {
					err = e
				} else {
					err = fmt.Errorf("%w: %v\n%s", messaging.ErrHandlerPanic, r, stack)
				}
				if c.permanent {
					err = messaging.Permanent(err)
				}
			}()
			return next(ctx, msg)
		}
	}, nil
}
