package queue_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/queue"
)

// TestWorkDeadLettersToTheGivenTopic: with WithDeadLetterTopic a failed
// job goes to that topic.
func TestWorkDeadLettersToTheGivenTopic(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	tp, dlq := topic(t, c, "jobs"), topic(t, c, "graveyard")
	sub, err := queue.Work(ctx, c, tp, "g", func(context.Context, job, *messaging.Message) error {
		return messaging.Permanent(errors.New("bad job"))
	}, queue.WithDeadLetterTopic(dlq))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	dead := integration.NewCollector()
	mwtest.Subscribe(t, ctx, c, dlq, dead.Handler(), messaging.Group(dlq)) // the group Work provisioned
	if _, err := mwtest.Must(queue.New[job](c, tp)).Enqueue(ctx, "", job{N: 1}); err != nil {
		t.Fatal(err)
	}
	dead.WaitDistinct(t, 1, 10*time.Second)
}

// TestWorkRunsTheGivenMiddleware: WithMiddleware's middleware wraps the job
// handler, inside the queue's retry layer: it sees every attempt and the
// handler's own error.
func TestWorkRunsTheGivenMiddleware(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	tp := topic(t, c, "jobs")
	errFlaky := errors.New("flaky")
	var calls, sawOwn atomic.Int32
	done := make(chan struct{})
	mw := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			if m.Topic != tp { // middleware.Validate's dry run
				return next(ctx, m)
			}
			calls.Add(1)
			err := next(ctx, m)
			if err == nil {
				close(done)
			} else if err == errFlaky {
				sawOwn.Add(1)
			}
			return err
		}
	}
	sub, err := queue.Work(ctx, c, tp, "g", func(_ context.Context, _ job, m *messaging.Message) error {
		if m.Attempt < 3 {
			return errFlaky
		}
		return nil
	}, queue.WithRetry(3, 0, 0), queue.WithMiddleware(mw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := mwtest.Must(queue.New[job](c, tp)).Enqueue(ctx, "", job{N: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("the job never succeeded through the middleware (%d calls)", calls.Load())
	}
	if calls.Load() != 3 || sawOwn.Load() != 2 {
		t.Fatalf("middleware saw %d attempts, %d with the handler's own error; want 3 and 2", calls.Load(), sawOwn.Load())
	}
}

// TestWorkRunsWorkersAtOnce: WithWorkers(n) handles n jobs at once.
func TestWorkRunsWorkersAtOnce(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	tp := topic(t, c, "jobs")
	const n = 3
	var in atomic.Int32
	all := make(chan struct{})
	sub, err := queue.Work(ctx, c, tp, "g", func(ctx context.Context, _ job, _ *messaging.Message) error {
		if in.Add(1) == n {
			close(all)
		}
		select { // every job waits until n run at once
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, queue.WithWorkers(n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	q := mwtest.Must(queue.New[job](c, tp))
	for i := range n {
		if _, err := q.Enqueue(ctx, "", job{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d jobs running at once after 10s", in.Load(), n)
	}
}

// TestWorkPassesSubscribeOptions: WithSubscribeOptions's options reach the
// subscription (here StartAt(Latest): a job enqueued before the workers'
// group existed is not handled, the next one is, and in the topic's order
// it would have come first), and Queue.Topic is the topic enqueued to.
func TestWorkPassesSubscribeOptions(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	tp := topic(t, c, "jobs")
	q := mwtest.Must(queue.New[job](c, tp))
	if q.Topic() != tp {
		t.Errorf("Queue.Topic() = %q, want %q", q.Topic(), tp)
	}
	if _, err := q.Enqueue(ctx, "", job{N: 1}); err != nil {
		t.Fatal(err)
	}
	handled := make(chan int, 2)
	sub, err := queue.Work(ctx, c, tp, "g", func(_ context.Context, j job, _ *messaging.Message) error {
		handled <- j.N
		return nil
	}, queue.WithSubscribeOptions(messaging.StartAt(messaging.Latest)), queue.WithWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := q.Enqueue(ctx, "", job{N: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-handled:
		if n != 2 {
			t.Fatalf("first job handled %d, want 2, enqueued after Work: StartAt(Latest) was not applied", n)
		}
	case <-ctx.Done():
		t.Fatal("no job handled")
	}
}
