// Package middleware holds what the middleware packages under it share: the
// order in which they compose and a check of that order.
//
// Every middleware here is a messaging.Middleware (or, for publishing, a
// messaging.PublisherMiddleware) and works with any adapter: it sees only the
// Handler and the Message.
//
// # Composition order
//
// With messaging.Chain(h, mws...) mws[0] is the outermost. The recommended
// order, outermost first:
//
//	otel.New         tracing: extracts the W3C trace context from the headers
//	logging.New      one record per delivery, with the final outcome
//	metrics.New      counts, durations, attempts, dead letters, in flight
//	deadletter.New   final failures go to the dead-letter topic, then ack
//	dedupe.New       skip messages already handled (by ID)
//	retry.New        backoff and max attempts (one retry layer only)
//	circuitbreaker.New, ratelimit.New
//	timeout.New      per-attempt deadline
//	recovery.New     panic -> error (optional: retry and deadletter also
//	                 turn panics into errors)
//	handler
//
// What a wrong order does:
//
//   - deadletter inside retry: made to work. The dead-letter layer sees the
//     retry layer around it and treats its last attempt as final.
//   - timeout outside an in-process retry: rejected. The deadline would cover
//     all attempts and the backoff waits, so the last attempts could never
//     run; the retry layer returns an error wrapping ErrMisordered (not
//     permanent: the message is not lost, it is redelivered, loudly). Around
//     a retry layer that counts with the broker's Attempt (the default) a
//     timeout is per delivery either way, so it is accepted.
//   - two retry layers: rejected (attempts would multiply).
//
// Validate and Chain find these errors before the first message arrives.
//
// # Packages
//
//	retry            backoff and max attempts, counted with the broker's Attempt
//	                 (or in process with retry.WithInProcess / retry.WithModeFor)
//	deadletter       dead-letter topic, and Queue to list, inspect, redrive
//	batch            BatchHandler consumer (per-message results) and a
//	                 coalescing Publisher
//	poll             Source: a Consumer over a fetch function (cursor, backoff,
//	                 seen items); Drain: real-time vs windowed consumption
//	recovery, timeout, dedupe, ratelimit, circuitbreaker
//	otel, metrics, logging
//
// batch.Handler produces a per-message Handler: wrap it with the
// per-message layers above as with any handler. poll.Drain subscribes its
// BatchHandler itself (returning the Subscription), so it takes no
// per-message layers. A BatchHandler (of poll.Drain, batch.Subscribe or
// BatchConsumer.SubscribeBatch) can be observed with otel.NewBatch (a span
// per batch) and metrics' BatchMiddleware (counts per message), outermost
// first as above. A poll.Source is a Consumer: subscribe wrapped
// handlers to it as to a broker.
//
// The publisher decorators (batch.NewPublisher, otel.Publisher,
// metrics.Publisher, logging.Publisher) do not close the Publisher they wrap
// when closed, as bufio.Writer does not close its writer: the caller owns it
// (it is often a Client also used for consuming).
package middleware

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// ErrMisordered is wrapped by the error a middleware returns when the
// composition it runs in cannot work, for example a timeout outside an
// in-process retry, or two retry layers.
var ErrMisordered = layer.ErrMisordered

// Validate checks that mws, composed with messaging.Chain, are in an order
// that works. It runs the chain once as a dry run: the middleware of this
// module check their position and do nothing else (nothing is published,
// waited for or counted); other middleware in mws run on an empty probe
// message, in a context for which IsProbe reports true, so that they can
// skip their side effects. What such a middleware returns for the probe
// (an error, a panic) says nothing of the order and is ignored; one that
// does not call the next handler leaves the layers inside it unchecked.
// It returns an error wrapping ErrMisordered describing the first problem,
// or nil.
func Validate(mws ...messaging.Middleware) error {
	probe := func(context.Context, *messaging.Message) error { return nil }
	h := messaging.Chain(probe, mws...)
	msg := &messaging.Message{ID: "middleware-probe", Topic: "middleware-probe", Attempt: 1}
	if err := layer.Call(layer.WithProbe(context.Background()), h, msg); errors.Is(err, ErrMisordered) {
		return fmt.Errorf("middleware: validate: %w", err)
	}
	return nil
}

// IsProbe reports whether ctx is the context of Validate's dry run (see
// Validate): a middleware given a probe message in it should call the
// next handler and do nothing else.
func IsProbe(ctx context.Context) bool { return layer.IsProbe(ctx) }

// Chain validates mws with Validate and returns messaging.Chain(h, mws...),
// or the validation error.
func Chain(h messaging.Handler, mws ...messaging.Middleware) (messaging.Handler, error) {
	if err := Validate(mws...); err != nil {
		return nil, err
	}
	return messaging.Chain(h, mws...), nil
}
