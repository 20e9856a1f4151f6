package queue_test

import (
	"context"
	"errors"
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
