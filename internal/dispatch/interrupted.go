package dispatch

import (
	"context"
	"errors"

	"github.com/msgkit/messaging"
)

type stopKey struct{}

// Stoppable returns ctx, a subscription's handler context (it ends when the
// subscription stops its handlers), carrying itself, so that Interrupted
// can tell, from any context derived from it, whether the subscription has
// stopped. Consumers set it on the context their handlers run with.
func Stoppable(ctx context.Context) context.Context {
	return context.WithValue(ctx, stopKey{}, ctx)
}

// Marked reports whether ctx carries a subscription's mark (Stoppable), so
// that Interrupted can tell a stop from the handler's own context errors.
func Marked(ctx context.Context) bool {
	_, ok := ctx.Value(stopKey{}).(context.Context)
	return ok
}

// Interrupted reports whether err, a handler's error in ctx (its handler
// context, or one derived from it), is the handler giving up because its
// subscription stopped: the context Stoppable marked has ended and err is
// a context error that is not Permanent. Such a handler did not finish:
// its message is redelivered, as after a failure, but never given up; at
// the last attempt it is released instead.
// A context error of the handler's own (a timeout of a middleware) while
// the subscription runs is a failure as any other. Without a Stoppable
// context it reports false.
func Interrupted(ctx context.Context, err error) bool {
	stop, _ := ctx.Value(stopKey{}).(context.Context)
	return stop != nil && stop.Err() != nil && err != nil && !messaging.IsPermanent(err) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
