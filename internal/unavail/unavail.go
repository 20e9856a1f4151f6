// Package unavail bounds an adapter's topology and admin calls (Provision,
// DeleteTopic, Inspect, the setup of a subscription...) while the broker
// cannot be reached, as the library bounds Publish: they retry for the
// unavailable timeout, then fail with messaging.ErrUnavailable, and return
// with the context's error when it ends first.
package unavail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/msgkit/messaging"
)

// Retry runs f, and runs it again with backoff (50ms to 250ms, as the
// adapters' Publish) while unreachable says its error means the broker
// could not be reached, until f succeeds or fails otherwise (Retry returns
// f's error), ctx ends, or timeout has passed since Retry was called; with
// ctx already ended it returns ctx's error without calling f. Every
// attempt's context ends with the timeout, so a dial or request in progress
// then ends too. When the timeout passed the error wraps
// messaging.ErrUnavailable and the last failure; when ctx ended, ctx's
// error and the last failure; pkg and op (such as "redis" and "provision
// t") start those two.
func Retry(ctx context.Context, pkg, op string, timeout time.Duration, unreachable func(error) bool, f func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		// Not even a first attempt: a client may answer from a pooled
		// connection without looking at ctx (kafka-go's did, so Kafka's
		// Topics with a cancelled context once returned the list).
		return fmt.Errorf("%s: %s: %w", pkg, op, err)
	}
	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 250*time.Millisecond
	for {
		err := f(attemptCtx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return fmt.Errorf("%s: %s: %w; last failure: %w", pkg, op, ctx.Err(), err)
		case attemptCtx.Err() != nil:
			return fmt.Errorf("%s: %s: %w (no answer within %v): %w", pkg, op, messaging.ErrUnavailable, timeout, err)
		case !unreachable(err):
			return err
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-t.C:
		case <-attemptCtx.Done():
			t.Stop()
		}
	}
}

// RetryValue is Retry for a call that returns a value besides its error.
func RetryValue[T any](ctx context.Context, pkg, op string, timeout time.Duration, unreachable func(error) bool, f func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := Retry(ctx, pkg, op, timeout, unreachable, func(ctx context.Context) error {
		var err error
		v, err = f(ctx)
		return err
	})
	return v, err
}
