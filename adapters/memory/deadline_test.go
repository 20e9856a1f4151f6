package memory_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
)

// TestAckDeadlineExtendedWhileHeld: a subscription holds more messages than
// it handles within one AckDeadline (Concurrency 1, Prefetch 10, a handler
// taking half the deadline); the deadline of every held message is extended
// (the client is a driver.Extender, as Capabilities().AckDeadline
// promises), so none of them is redelivered: each message is handled once.
// Without extension the messages queued in the engine expired and came back
// with Attempt 2, and ran twice.
func TestAckDeadlineExtendedWhileHeld(t *testing.T) {
	const (
		n        = 10
		deadline = 400 * time.Millisecond
		work     = deadline / 2
		topic    = "deadline-extended"
	)
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = messaging.NewMessage(fmt.Appendf(nil, "%d", i))
	}
	if err := c.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []string // "payload attempt" of every handler call
	sub, err := c.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		calls = append(calls, fmt.Sprintf("%s/%d", m.Payload, m.Attempt))
		mu.Unlock()
		select { // the handler's work
		case <-time.After(work):
		case <-ctx.Done():
		}
		return nil
	}, messaging.Group("g"), messaging.Concurrency(1), messaging.Prefetch(n), messaging.AckDeadline(deadline))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	// The group is done once every message is acknowledged: a redelivered
	// message's first acknowledgement is stale and ignored, so the group
	// is done only after its redeliveries ran too.
	integration.Eventually(t, 30*time.Second, func() error {
		st, err := c.Inspect(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		gs := group(t, st, "g")
		backlog, _ := gs.Backlog.Value()
		inFlight, _ := gs.InFlight.Value()
		if backlog == 0 && inFlight == 0 {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("group not done (backlog %d, in flight %d): %d handler calls for %d messages, want %d: %v", backlog, inFlight, len(calls), n, n, calls)
	})
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != n {
		t.Errorf("%d handler calls for %d messages (Concurrency 1, Prefetch %d, AckDeadline %v, handler %v), want %d: %v", len(calls), n, n, deadline, work, n, calls)
	}
}
