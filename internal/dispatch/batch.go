package dispatch

import (
	"context"
	"fmt"

	"github.com/msgkit/messaging"
)

// SubscribeBatchArgs checks the arguments of BatchConsumer.SubscribeBatch the
// same way for every adapter and resolves the options; it rejects
// Concurrency above 1, as the contract says.
func SubscribeBatchArgs(closed bool, topic string, h messaging.BatchHandler, opts []messaging.SubscribeOption) (messaging.SubscribeOptions, error) {
	o, err := subscribeArgs("subscribe batch", closed, topic, h == nil, 1, opts)
	if err != nil {
		return messaging.SubscribeOptions{}, err
	}
	if o.Concurrency > 1 {
		return messaging.SubscribeOptions{}, fmt.Errorf("messaging: subscribe batch: %w: concurrency %d: batches are handled one at a time; run more subscriptions in the group instead",
			messaging.ErrInvalidOption, o.Concurrency)
	}
	o.Prefetch = o.BatchSize
	return o, nil
}

// InvokeBatch runs h on msgs, turning a panic or a result of the wrong length
// into an error for every message, and classifies each message's result as
// Invoke does. The results are in the order of msgs.
//
// When ctx (the handler context) has already ended, h is not called and
// every message is released: the handler could only fail them, counting an
// attempt. Fetch loops can get that far because a context's Done closes
// before its children are cancelled (see Pool.Submit).
func InvokeBatch(ctx context.Context, h messaging.BatchHandler, msgs []*messaging.Message, maxAttempts int) []Result {
	out := make([]Result, len(msgs))
	if ctx.Err() != nil {
		for i := range out {
			out[i] = Result{Outcome: Release}
		}
		return out
	}
	errs, err := CallBatch(ctx, h, msgs)
	for i, m := range msgs {
		e := err
		if e == nil && errs != nil {
			e = errs[i]
		}
		out[i] = classifyIn(ctx, e, m.Attempt, maxAttempts)
	}
	return out
}

// CallBatch runs h on msgs and returns its results, or, when h panics
// (an error wrapping messaging.ErrHandlerPanic) or returns a slice of
// another length than msgs, nil and the error that fails every message.
func CallBatch(ctx context.Context, h messaging.BatchHandler, msgs []*messaging.Message) (errs []error, err error) {
	if err := recovered(func() error { errs = h(ctx, msgs); return nil }); err != nil {
		return nil, err
	}
	if errs != nil && len(errs) != len(msgs) {
		return nil, fmt.Errorf("messaging: batch handler returned %d results for %d messages", len(errs), len(msgs))
	}
	return errs, nil
}
