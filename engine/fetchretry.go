package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/retrylog"
)

// fetchRetry paces a fetch loop's retries after transient errors (newBackoff)
// and logs them (retrylog: a broker away for a minute costs each
// subscription about sixty failed fetches, sixty lines at Warn). A run of
// failures is logged at Warn when it starts and once every retrylog.Every;
// its end ("fetching resumed", Info) says how many fetches failed and for
// how long, which tells the operator that the subscription is back and
// when. Used by its loop's goroutine only.
type fetchRetry struct {
	s   *subscription
	bo  *backoff.ExponentialBackOff
	run retrylog.Run
}

func newFetchRetry(s *subscription) *fetchRetry {
	return &fetchRetry{s: s, bo: newBackoff()}
}

// retry sorts a fetch error: nil to fetch again after a backoff, or the
// error that ends the subscription.
func (r *fetchRetry) retry(err error) error {
	wait, err := r.retryIn(err)
	if err != nil {
		return err
	}
	if !pauseUntil(r.s.fetchCtx, time.Now().Add(wait)) {
		return r.s.fetchCtx.Err()
	}
	return nil
}

// retryIn sorts a fetch error: how long to wait before fetching again, or
// the error that ends the subscription.
func (r *fetchRetry) retryIn(err error) (time.Duration, error) {
	s := r.s
	if s.fetchCtx.Err() != nil {
		return 0, s.fetchCtx.Err()
	}
	if !driver.IsTransient(err) {
		if errors.Is(err, messaging.ErrTopicDeleted) {
			return 0, fmt.Errorf("engine: %s: topic %s: %w", s.c.opts.Name, s.topic, err)
		}
		return 0, err
	}
	return r.failed(err), nil
}

// failed records a transient fetch error, logs it and returns how long to
// wait before the next fetch.
func (r *fetchRetry) failed(err error) time.Duration {
	wait := r.bo.NextBackOff()
	s := r.s
	r.run.Failed(s.log, s.c.opts.Name+": fetching failed; retrying", "topic", s.topic, "group", s.o.Group, "error", err, "retry_in", wait)
	return wait
}

// ok records a fetch that did not fail, ending a run of failures.
func (r *fetchRetry) ok() {
	if !r.run.Failing() {
		return // the common case: nothing to log, nothing built
	}
	s := r.s
	r.run.Succeeded(s.log, s.c.opts.Name+": fetching resumed", "topic", s.topic, "group", s.o.Group)
	r.bo.Reset()
}

// pauseUntil waits until until (at once if it has passed), or returns false
// if ctx ends first.
func pauseUntil(ctx context.Context, until time.Time) bool {
	wait := time.Until(until)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newBackoff paces the fetches after transient errors: from 50ms up to 1s
// (each wait randomised by ±50%, so at most 1.5s). The cap bounds how long
// after the broker (or a new leader) is back a subscription stays idle: with
// 5s a Redis Cluster failover of 4s left a group waiting up to 3.4s more
// (TestFailoverMaster); the target is delivery within 2s. The cost
// is one fetch attempt a second per subscription while the broker is down.
func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = time.Second
	return b
}
