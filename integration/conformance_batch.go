package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// The cases for the optional messaging.BatchConsumer interface and for the
// RedeliveryBackoff option (Capabilities.BrokerBackoff).

func (s *suite) batchConsumer() messaging.BatchConsumer {
	s.t.Helper()
	bc, ok := s.c.(messaging.BatchConsumer)
	if !ok {
		s.t.Fatalf("%T does not implement messaging.BatchConsumer", s.c)
	}
	return bc
}

func (s *suite) subscribeBatch(c messaging.Client, h messaging.BatchHandler, opts ...messaging.SubscribeOption) messaging.Subscription {
	s.t.Helper()
	sub, err := c.(messaging.BatchConsumer).SubscribeBatch(s.t.Context(), s.topic, h, opts...)
	if err != nil {
		s.t.Fatalf("SubscribeBatch: %v", err)
	}
	s.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// batchDelivery: every message arrives once, in batches of at most
// BatchSize, one batch at a time; Concurrency above 1 is rejected.
func (s *suite) batchDelivery(t *testing.T) {
	const n, size = 45, 10
	if _, err := s.batchConsumer().SubscribeBatch(t.Context(), s.topic, func(context.Context, []*messaging.Message) []error { return nil },
		messaging.Concurrency(2)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("SubscribeBatch with Concurrency(2): %v, want ErrInvalidOption", err)
	}
	g := s.group("batch")
	s.provision(g)
	s.publish(s.c, numbered("b", n)...)
	col := NewCollector()
	var running, overlapped, oversize, empty atomic.Int32
	var batches atomic.Int32
	s.subscribeBatch(s.c, func(_ context.Context, msgs []*messaging.Message) []error {
		if running.Add(1) > 1 {
			overlapped.Add(1)
		}
		defer running.Add(-1)
		batches.Add(1)
		switch {
		case len(msgs) == 0:
			empty.Add(1)
		case len(msgs) > size:
			oversize.Add(1)
		}
		for _, m := range msgs {
			col.Add(m)
		}
		return nil
	}, messaging.Group(g), messaging.BatchSize(size), messaging.BatchWait(100*time.Millisecond), messaging.AckDeadline(s.h.AckDeadline))
	col.WaitDistinct(t, n, s.h.Timeout)
	if d := col.Duplicates(); d != 0 {
		t.Errorf("%d duplicates without failures", d)
	}
	if o, e, v := overlapped.Load(), empty.Load(), oversize.Load(); o+e+v != 0 {
		t.Errorf("batches: %d overlapping, %d empty, %d larger than %d", o, e, v, size)
	}
	if b := batches.Load(); b < n/size || b == n {
		t.Errorf("%d messages came in %d batches of at most %d: not batched", n, b, size)
	}
}

// batchPartialFailure: only the messages whose entry of the result is an
// error are redelivered, with Attempt 2.
func (s *suite) batchPartialFailure(t *testing.T) {
	const n = 8
	g := s.group("batchfail")
	s.provision(g)
	msgs := numbered("p", n)
	s.publish(s.c, msgs...)
	col := NewCollector()
	s.subscribeBatch(s.c, func(_ context.Context, msgs []*messaging.Message) []error {
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			col.Add(m)
			var k int
			if _, err := fmt.Sscanf(m.ID, "p-%d", &k); err == nil && k%2 == 0 && m.Attempt == 1 {
				errs[i] = errors.New("integration: even messages fail once")
			}
		}
		return errs
	}, messaging.Group(g), messaging.BatchSize(4), messaging.AckDeadline(s.h.AckDeadline))
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Total() >= n+n/2 }) {
		t.Fatalf("%d deliveries, want %d (%d messages, %d failing once)", col.Total(), n+n/2, n, n/2)
	}
	s.observeWithMarkers(col, n)
	for i, m := range msgs {
		want := 1
		if i%2 == 0 {
			want = 2
		}
		if got := col.Count(m.ID); got != want {
			t.Errorf("%s delivered %d times, want %d", m.ID, got, want)
		}
	}
}

// redeliveryBackoff: with RedeliveryBackoff the broker spaces redeliveries
// of a failing message by the schedule, without any RetryAfter delay.
func (s *suite) redeliveryBackoff(t *testing.T) {
	schedule := []time.Duration{400 * time.Millisecond, 1200 * time.Millisecond}
	g := s.group("backoff")
	s.provision(g)
	var (
		mu    sync.Mutex
		times []time.Time
		once  sync.Once // attempt 3 may be delivered twice (at least once)
	)
	done := make(chan struct{})
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if m.Attempt < 3 {
			return errors.New("integration: not yet")
		}
		once.Do(func() { close(done) })
		return nil
	}, messaging.Group(g), messaging.RedeliveryBackoff(schedule...), messaging.AckDeadline(s.h.AckDeadline))
	s.publish(s.c, &messaging.Message{ID: "backed-off"})
	select {
	case <-done:
	case <-time.After(s.h.Timeout):
		mu.Lock()
		n := len(times)
		mu.Unlock()
		t.Fatalf("attempt 3 never came (%d deliveries)", n)
	}
	mu.Lock()
	got := append([]time.Time(nil), times...)
	mu.Unlock()
	for i, want := range schedule {
		if gap := got[i+1].Sub(got[i]); gap < want-want/10 {
			t.Errorf("attempt %d came %v after attempt %d, want >= %v", i+2, gap, i+1, want)
		} else {
			t.Logf("attempt %d came %v after attempt %d (schedule %v)", i+2, gap, i+1, want)
		}
	}
}

// batchStopReleasesLastAttempt is StopReleasesLastAttempt for a batch
// handler: with MaxAttempts(1), a SubscribeBatch subscription stopped while
// its handler runs, which then fails its batch with the context's error,
// gives up none of the messages, also after a second stop.
func (s *suite) batchStopReleasesLastAttempt(t *testing.T) {
	g := s.group("bstop")
	s.provision(g)
	msgs := numbered("bstop", 4)
	s.publish(s.c, msgs...)
	s.stopTwiceAtLastAttempt(t, g, msgs, func(ctx context.Context, started chan<- struct{}) messaging.Subscription {
		sub, err := s.batchConsumer().SubscribeBatch(ctx, s.topic, func(ctx context.Context, ms []*messaging.Message) []error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			errs := make([]error, len(ms))
			for i := range errs {
				errs[i] = ctx.Err()
			}
			return errs
		}, messaging.Group(g), messaging.MaxAttempts(1), messaging.BatchSize(2))
		if err != nil {
			t.Fatalf("SubscribeBatch: %v", err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		return sub
	})
}
