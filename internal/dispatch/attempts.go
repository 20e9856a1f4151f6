package dispatch

import "context"

type maxAttemptsKey struct{}

// WithMaxAttempts returns ctx carrying a subscription's MaxAttempts (0 for
// no limit), for the handler contexts of the subscription: middleware that
// observes results (metrics) reads it with MaxAttempts and classifies a
// failed last attempt with Classify, as the subscription settles it. It is
// set even for 0, so a subscription made inside a handler does not inherit
// the limit of the one it runs in.
func WithMaxAttempts(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, maxAttemptsKey{}, max(n, 0))
}

// MaxAttempts returns the MaxAttempts that WithMaxAttempts put in ctx, and
// whether ctx has one (it does not outside a subscription's handlers, or
// for consumers that do not set it).
func MaxAttempts(ctx context.Context) (int, bool) {
	n, ok := ctx.Value(maxAttemptsKey{}).(int)
	return n, ok
}
