// Package layer lets the middleware packages see each other at run time: each
// layer records itself in the handler context, so an inner layer knows which
// layers wrap it (to adapt to, or reject, a wrong composition order), and
// outer observers (metrics, logging) learn what inner layers did with a
// message (dead-lettered it, skipped a duplicate).
package layer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// ErrMisordered is returned for a composition of middleware that cannot work
// (see package middleware for the order).
var ErrMisordered = errors.New("middleware: misordered")

// Kept marks err as the error of an inner layer that could not finish with
// a message and keeps it for redelivery (a dead-letter layer whose publish
// failed): an outer retry layer returns it as it is, never as given up,
// or the message would be acknowledged and lost. IsKept finds the mark.
func Kept(err error) error { return &keptError{err} }

// IsKept reports whether err, or an error it wraps, was marked by Kept.
func IsKept(err error) bool {
	var k *keptError
	return errors.As(err, &k)
}

type keptError struct{ err error }

func (e *keptError) Error() string { return e.err.Error() }
func (e *keptError) Unwrap() error { return e.err }

// Kind names a middleware.
type Kind string

// The middleware kinds that take part in order checks.
const (
	Retry          Kind = "retry"
	DeadLetter     Kind = "deadletter"
	Timeout        Kind = "timeout"
	Recovery       Kind = "recovery"
	Dedupe         Kind = "dedupe"
	RateLimit      Kind = "ratelimit"
	CircuitBreaker Kind = "circuitbreaker"
	Tracing        Kind = "otel"
	Metrics        Kind = "metrics"
	Logging        Kind = "logging"
	Batch          Kind = "batch"
)

// Frame is one layer that a handler runs inside.
type Frame struct {
	Kind Kind
	// InProcess: a retry layer that loops in process.
	InProcess bool
	// MaxAttempts: a retry layer's limit.
	MaxAttempts int
	// Final, for a retry layer, reports whether a failed attempt is the last
	// one (so an inner dead-letter layer can act on it).
	Final func(err error, attempt int) bool
	outer *Frame
}

type frameKey struct{}

// Enter records f as the innermost layer of ctx.
func Enter(ctx context.Context, f Frame) context.Context {
	if p, ok := ctx.Value(frameKey{}).(*Frame); ok {
		f.outer = p
	}
	return context.WithValue(ctx, frameKey{}, &f)
}

// Outer returns the nearest layer of kind k that wraps the caller.
func Outer(ctx context.Context, k Kind) (Frame, bool) {
	f, _ := ctx.Value(frameKey{}).(*Frame)
	for ; f != nil; f = f.outer {
		if f.Kind == k {
			return *f, true
		}
	}
	return Frame{}, false
}

type probeKey struct{}

// WithProbe marks ctx as a dry run: layers check their order and call the
// next handler without side effects (no publishing, waiting or counting).
func WithProbe(ctx context.Context) context.Context {
	return context.WithValue(ctx, probeKey{}, true)
}

// IsProbe reports whether ctx is a dry run.
func IsProbe(ctx context.Context) bool {
	v, _ := ctx.Value(probeKey{}).(bool)
	return v
}

// Misordered returns an error wrapping ErrMisordered.
func Misordered(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMisordered, fmt.Sprintf(format, args...))
}

// Report collects what inner layers did with a message, for outer observers.
type Report struct {
	// DeadLetterTopic is set when a dead-letter layer published the message
	// there (the handler's error was then turned into nil).
	DeadLetterTopic string
	// Duplicate is set when a dedupe layer skipped an already handled message.
	Duplicate bool
	outer     *Report
}

type reportKey struct{}

// WithReport returns a context whose inner layers fill the returned report.
func WithReport(ctx context.Context) (context.Context, *Report) {
	r := &Report{}
	r.outer, _ = ctx.Value(reportKey{}).(*Report)
	return context.WithValue(ctx, reportKey{}, r), r
}

// DeadLettered tells every observer wrapping ctx that the message went to topic.
func DeadLettered(ctx context.Context, topic string) {
	for r, _ := ctx.Value(reportKey{}).(*Report); r != nil; r = r.outer {
		r.DeadLetterTopic = topic
	}
}

// Duplicate tells every observer wrapping ctx that the message was skipped.
func Duplicate(ctx context.Context) {
	for r, _ := ctx.Value(reportKey{}).(*Report); r != nil; r = r.outer {
		r.Duplicate = true
	}
}

// Call runs h, turning a panic into an error wrapping
// messaging.ErrHandlerPanic (with the stack), as adapters do.
func Call(ctx context.Context, h messaging.Handler, msg *messaging.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok && errors.Is(e, messaging.ErrHandlerPanic) {
				err = e
				return
			}
			err = fmt.Errorf("%w: %v\n%s", messaging.ErrHandlerPanic, r, debug.Stack())
		}
	}()
	return h(ctx, msg)
}

// CallBatch runs h on msgs as adapters do (see messaging.BatchHandler) and
// returns the results to hand on: h's own, nil when every message
// succeeded; or, when h panics (an error wrapping messaging.ErrHandlerPanic)
// or returns a slice of another length than msgs, a slice holding for every
// message that error, which is also returned as all.
func CallBatch(ctx context.Context, h messaging.BatchHandler, msgs []*messaging.Message) (errs []error, all error) {
	errs, all = dispatch.CallBatch(ctx, h, msgs)
	if all == nil {
		return errs, nil
	}
	errs = make([]error, len(msgs))
	for i := range errs {
		errs[i] = all
	}
	return errs, all
}

// Interrupted reports whether err, a handler's error in ctx, is the context
// error of a handler its subscription's stop interrupted: the subscription
// redelivers that message even at the last attempt (see
// dispatch.Interrupted), so no layer may treat it as a last failure.
func Interrupted(ctx context.Context, err error) bool { return dispatch.Interrupted(ctx, err) }

// Marked reports whether ctx is the handler context of a consumer that
// marks its contexts (the consumers of this module), so that Interrupted
// tells its stops apart; without the mark Interrupted reports false.
func Marked(ctx context.Context) bool { return dispatch.Marked(ctx) }

// GivenUp reports whether the subscription gives msg up after the handler
// failed it with err in ctx (the handler context): err is marked
// messaging.Permanent, or msg.Attempt is the last the subscription's
// MaxAttempts allows, which the consumers of this module put in the handler
// context (a consumer that does not, gives up only the first kind). A nil
// err is not given up, nor is the context error of a handler its
// subscription's stop interrupted (see Interrupted).
func GivenUp(ctx context.Context, msg *messaging.Message, err error) bool {
	if err == nil || dispatch.Interrupted(ctx, err) {
		return false
	}
	maxAttempts, _ := dispatch.MaxAttempts(ctx)
	return dispatch.Classify(err, msg.Attempt, maxAttempts).Outcome == dispatch.Term
}
