// Package dispatch holds what every adapter's consumer side shares: running a
// handler safely, classifying its result, the worker pool that keeps per-key
// order, and the Subscription lifecycle.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Outcome is what an adapter must do with a delivered message; it is
// driver.Outcome, shared with the engine.
type Outcome = driver.Outcome

// The outcomes, as in package driver.
const (
	Ack     = driver.Ack
	Nack    = driver.Nack
	Term    = driver.Term
	Release = driver.Release
)

// Result is a handler's classified result.
type Result struct {
	Outcome Outcome
	Delay   time.Duration // for Nack
	Err     error         // the handler's error, nil for Ack and Release
}

// Invoke runs h on msg, turning a panic into an error wrapping
// messaging.ErrHandlerPanic, and classifies the result as Classify does.
// maxAttempts > 0 turns a Nack of the last allowed attempt into Term,
// unless the subscription's stop interrupted the handler (see
// Interrupted).
func Invoke(ctx context.Context, h messaging.Handler, msg *messaging.Message, maxAttempts int) Result {
	return classifyIn(ctx, call(ctx, h, msg), msg.Attempt, maxAttempts)
}

// classifyIn is Classify for a handler that ran in ctx. An interrupted one
// is never a Term: at the last allowed attempt it is a Release, which gives
// the attempt back where the broker lets it (so that no broker-side limit
// gives the message up either), else a Nack as any failure.
func classifyIn(ctx context.Context, err error, attempt, maxAttempts int) Result {
	r := Classify(err, attempt, maxAttempts)
	if r.Outcome == Term && Interrupted(ctx, err) {
		return Result{Outcome: Release}
	}
	return r
}

// Classify maps a handler error to an Outcome.
func Classify(err error, attempt, maxAttempts int) Result {
	switch {
	case err == nil:
		return Result{Outcome: Ack}
	case messaging.IsPermanent(err):
		return Result{Outcome: Term, Err: err}
	case maxAttempts > 0 && attempt >= maxAttempts:
		return Result{Outcome: Term, Err: fmt.Errorf("messaging: giving up after %d attempts: %w", attempt, err)}
	}
	d, _ := messaging.RetryDelay(err)
	return Result{Outcome: Nack, Delay: d, Err: err}
}

func call(ctx context.Context, h messaging.Handler, msg *messaging.Message) error {
	return recovered(func() error { return h(ctx, msg) })
}

// recovered runs f, turning a panic into an error wrapping
// messaging.ErrHandlerPanic (kept as is when the panic value already wraps it).
func recovered(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok && errors.Is(e, messaging.ErrHandlerPanic) {
				err = e
				return
			}
			err = fmt.Errorf("%w: %v\n%s", messaging.ErrHandlerPanic, r, debug.Stack())
		}
	}()
	return f()
}
