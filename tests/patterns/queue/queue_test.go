package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/patterns/queue"
)

type job struct {
	N    int  `json:"n"`
	Fail int  `json:"fail"` // fail this many attempts first
	Bad  bool `json:"bad"`  // fail permanently
}

func topic(t *testing.T, c messaging.Client, prefix string) string {
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, name)
			_ = d.DeleteTopic(ctx, queue.DeadLetterTopic(name))
		}
	})
	return name
}

func TestWorkersShareJobs(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		ctx := t.Context()
		tp := topic(t, c, "jobs")
		group := integration.UniqueName(t, "workers")
		col := integration.NewCollector()
		var mu sync.Mutex
		perWorker := map[int]int{}
		for w := range 2 {
			sub, err := queue.Work(ctx, c, tp, group, func(_ context.Context, j job, m *messaging.Message) error {
				mu.Lock()
				perWorker[w]++
				mu.Unlock()
				col.Add(m)
				return nil
			}, queue.WithWorkers(3))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Close() })
		}
		q, err := queue.New[job](c, tp)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i := range 50 {
			id, err := q.Enqueue(ctx, "", job{N: i})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		col.WaitDistinct(t, 50, h.Timeout)
		col.Report(t, ids)
		mu.Lock()
		t.Logf("jobs per worker: %v", perWorker)
		mu.Unlock()
	})
}

func TestRetryThenSucceed(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		ctx := t.Context()
		tp := topic(t, c, "jobs-retry")
		done := make(chan *messaging.Message, 1)
		sub, err := queue.Work(ctx, c, tp, integration.UniqueName(t, "g"), func(_ context.Context, j job, m *messaging.Message) error {
			if m.Attempt <= j.Fail {
				return errors.New("transient")
			}
			done <- m.Clone()
			return nil
		}, queue.WithRetry(5, 10*time.Millisecond, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		q, _ := queue.New[job](c, tp)
		if _, err := q.Enqueue(ctx, "k", job{Fail: 2}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-done:
			if m.Attempt != 3 {
				t.Errorf("succeeded on attempt %d, want 3", m.Attempt)
			}
		case <-time.After(h.Timeout):
			t.Fatal("job never succeeded")
		}
	})
}

func TestFailedJobsAreDeadLettered(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		ctx := t.Context()
		tp := topic(t, c, "jobs-dl")
		var mu sync.Mutex
		attempts := map[int]int{}
		sub, err := queue.Work(ctx, c, tp, integration.UniqueName(t, "g"), func(_ context.Context, j job, m *messaging.Message) error {
			mu.Lock()
			attempts[j.N]++
			mu.Unlock()
			if j.Bad {
				return messaging.Permanent(errors.New("bad job"))
			}
			return errors.New("always fails")
		}, queue.WithRetry(3, 10*time.Millisecond, 20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })

		q, _ := queue.New[job](c, tp)
		dead := integration.NewCollector()
		subscribeDLQ := func() {
			// The group Work provisioned: it holds the letters published
			// before anyone subscribed.
			dsub, err := c.Subscribe(ctx, queue.DeadLetterTopic(tp), dead.Handler(), messaging.Group(queue.DeadLetterTopic(tp)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = dsub.Close() })
		}
		retains := c.Capabilities().Groups
		if !retains {
			subscribeDLQ() // nothing is kept for later subscribers
		}
		if _, err := q.Enqueue(ctx, "", job{N: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Enqueue(ctx, "", job{N: 2, Bad: true}); err != nil {
			t.Fatal(err)
		}
		if retains {
			subscribeDLQ()
		}
		dead.WaitDistinct(t, 2, h.Timeout)
		byAttempts := map[string]string{}
		for _, m := range dead.Messages() {
			e, err := deadletter.Parse(m)
			if err != nil {
				t.Fatal(err)
			}
			if e.Topic != tp {
				t.Errorf("dead letter topic header %q, want %q", e.Topic, tp)
			}
			byAttempts[string(m.Payload)] = e.Reason
		}
		mu.Lock()
		defer mu.Unlock()
		if attempts[1] != 3 {
			t.Errorf("failing job ran %d times, want 3", attempts[1])
		}
		if attempts[2] != 1 {
			t.Errorf("permanently failing job ran %d times, want 1", attempts[2])
		}
		t.Logf("dead letters: %v", byAttempts)
	})
}

func TestWorkRejectsBadOptions(t *testing.T) {
	h, _ := integration.LookupHarness("memory")
	c := h.Client(t)
	noop := func(context.Context, job, *messaging.Message) error { return nil }
	if _, err := queue.Work(t.Context(), c, "t", "g", noop, queue.WithWorkers(0)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Workers(0): %v, want ErrInvalidOption", err)
	}
	if _, err := queue.Work(t.Context(), c, "t", "g", noop, queue.WithRetry(0, time.Millisecond, time.Millisecond)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Retry(0): %v, want ErrInvalidOption", err)
	}
	if _, err := queue.Work[job](t.Context(), c, "t", "g", nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("nil handler: %v, want ErrInvalidOption", err)
	}
}
