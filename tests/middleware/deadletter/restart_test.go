package deadletter_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/retry"
)

// TestAttemptsSurviveRestart runs on every backend whose broker counts
// attempts: a handler failing forever, whose consumer is replaced after the
// first attempt, still runs exactly MaxAttempts times in total before the
// message is dead-lettered.
func TestAttemptsSurviveRestart(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c1 := hn.Client(t)
		if caps := c1.Capabilities(); !caps.BrokerAttempts || !caps.Groups {
			t.Skipf("%s: attempts are not counted by the broker", hn.Name)
		}
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c1, "restart")
		dlq := mwtest.Topic(t, c1, "dlq")
		group := integration.UniqueName(t, "g")
		dlqGroup := integration.UniqueName(t, "dg")
		if err := messaging.Provision(ctx, c1, dlq, dlqGroup); err != nil {
			t.Fatal(err)
		}
		if err := messaging.Provision(ctx, c1, topic, group); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int32
		first := make(chan struct{}, 1)
		handler := func(c messaging.Client) messaging.Handler {
			return messaging.Chain(func(context.Context, *messaging.Message) error {
				calls.Add(1)
				select {
				case first <- struct{}{}:
				default:
				}
				return errBoom
			}, mwtest.Must(deadletter.New(c, dlq)), mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(300*time.Millisecond, 300*time.Millisecond), retry.WithJitter(0))))
		}
		letters := integration.NewCollector()
		mwtest.Subscribe(t, ctx, c1, dlq, func(_ context.Context, m *messaging.Message) error {
			if !deadletter.IsControl(m) {
				letters.Add(m)
			}
			return nil
		}, messaging.Group(dlqGroup))

		sub1 := mwtest.Subscribe(t, ctx, c1, topic, handler(c1), messaging.Group(group))
		mwtest.Publish(t, ctx, c1, topic, &messaging.Message{Payload: []byte("x")})
		select {
		case <-first:
		case <-ctx.Done():
			t.Fatal("first attempt never ran")
		}
		if err := sub1.Close(); err != nil {
			t.Fatal(err)
		}
		c2 := hn.Client(t) // a new consumer process, as far as the broker knows
		mwtest.Subscribe(t, ctx, c2, topic, handler(c2), messaging.Group(group))
		letters.WaitDistinct(t, 1, hn.Timeout)
		if n := calls.Load(); n != 3 {
			t.Fatalf("handler ran %d times across the restart, want exactly 3", n)
		}
		if a := letters.Messages()[0].Header[deadletter.HeaderAttempts]; a != "3" {
			t.Fatalf("dead letter says %s attempts, want 3", a)
		}
	})
}
