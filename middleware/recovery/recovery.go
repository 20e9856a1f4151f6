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

// Option configures New.
type Option func(*config)

type config struct {
	onPanic   func(ctx context.Context, msg *messaging.Message, value any, stack []byte)
	permanent bool
}

// OnPanic calls f with the panic value and stack of every recovered panic
// (for logging or alerting). f must not panic.
func OnPanic(f func(ctx context.Context, msg *messaging.Message, value any, stack []byte)) Option {
	return func(c *config) { c.onPanic = f }
}

// Permanent makes a panic a permanent failure (not redelivered; dead-lettered
// by a deadletter layer outside). By default a panic is retryable, like any
// other error.
func Permanent() Option { return func(c *config) { c.permanent = true } }

// New returns the recovery middleware. A recovered panic becomes an error
// wrapping messaging.ErrHandlerPanic, with the value and the stack in its
// text.
func New(opts ...Option) messaging.Middleware {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
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
	}
}
