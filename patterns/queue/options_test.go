package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/queue"
)

func nopJob(context.Context, string, *messaging.Message) error { return nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// Work (and New, for WithCodec) fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		bad  []queue.Option
	}{
		{"WithCodec", []queue.Option{queue.WithCodec(nil)}},
		{"WithWorkers", []queue.Option{queue.WithWorkers(0), queue.WithWorkers(-1)}},
		{"WithRetry", []queue.Option{queue.WithRetry(0, time.Millisecond, time.Second), queue.WithRetry(3, -time.Millisecond, time.Second), queue.WithRetry(3, time.Second, time.Millisecond)}},
		{"WithDeadLetterTopic", []queue.Option{queue.WithDeadLetterTopic(""), queue.WithDeadLetterTopic("a b")}},
		{"WithMiddleware", []queue.Option{queue.WithMiddleware(nil)}},
	} {
		for i, o := range tc.bad {
			sub, err := queue.Work(ctx, c, "jobs", "workers", nopJob, o)
			if sub != nil {
				t.Errorf("%s #%d: Work returned a subscription with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "queue", tc.name, err, tc.name)
		}
	}
	_, err := queue.New[string](c, "jobs", queue.WithCodec(nil))
	mwtest.WantInvalid(t, "queue", "New WithCodec(nil)", err, "WithCodec")
}

// TestOptionsConflictAndApply: WithDeadLetterTopic and WithoutDeadLetter
// conflict; New takes WithCodec only.
func TestOptionsConflictAndApply(t *testing.T) {
	c := mwtest.Memory(t)
	_, err := queue.Work(context.Background(), c, "jobs", "workers", nopJob, queue.WithDeadLetterTopic("jobs.dead"), queue.WithoutDeadLetter())
	mwtest.WantInvalid(t, "queue", "conflict", err, "WithDeadLetterTopic", "WithoutDeadLetter")
	_, err = queue.New[string](c, "jobs", queue.WithWorkers(2))
	mwtest.WantInvalid(t, "queue", "New WithWorkers", err, "New", "WithWorkers")
}

// TestConstructorsRejectInvalidArguments: nil publishers, clients and
// handlers and invalid topics are rejected.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	c := mwtest.Memory(t)
	_, err := queue.New[string](nil, "jobs")
	mwtest.WantInvalid(t, "queue", "New(nil)", err, "New", "publisher")
	_, err = queue.New[string](c, "a b")
	mwtest.WantInvalid(t, "queue", "New bad topic", err, "New", "topic")
	_, err = queue.Work[string](context.Background(), nil, "jobs", "workers", nopJob)
	mwtest.WantInvalid(t, "queue", "Work nil client", err, "Work", "client")
	_, err = queue.Work(context.Background(), c, "a b", "workers", nopJob)
	mwtest.WantInvalid(t, "queue", "Work bad topic", err, "Work", "topic")
	_, err = queue.Work[string](context.Background(), c, "jobs", "workers", nil)
	mwtest.WantInvalid(t, "queue", "Work nil handler", err, "Work", "handler")
}
