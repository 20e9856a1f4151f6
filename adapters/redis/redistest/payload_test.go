package redistest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// TestPayloadsNotReused: the adapter hands out the bytes of go-redis's
// replies as payloads without copying them, which holds only while go-redis
// reads every reply into a buffer of its own. Each message here is
// published after the last one was delivered, so each comes in a read of
// its own; the payloads delivered first must still hold their bytes after
// all the later reads, for a group and for a Stream read.
func TestPayloadsNotReused(t *testing.T) {
	c := redistest.Open(t)
	topic := integration.UniqueName(t, "payloads")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	const n = 20
	payload := func(i int) string { return fmt.Sprintf("payload-%03d", i) }
	run := func(t *testing.T, subscribe func(messaging.Handler) (messaging.Subscription, error)) {
		delivered := make(chan []byte)
		sub, err := subscribe(func(ctx context.Context, m *messaging.Message) error {
			select {
			case delivered <- m.Payload: // kept as it is, not copied
			case <-ctx.Done():
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var got [][]byte
		for i := range n {
			if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte(payload(i))}); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-delivered:
				got = append(got, p)
			case <-time.After(30 * time.Second):
				t.Fatalf("message %d not delivered within 30s", i)
			}
		}
		for i, p := range got {
			if string(p) != payload(i) {
				t.Errorf("payload %d = %q after the later reads, want %q: a read reused its bytes", i, p, payload(i))
			}
		}
	}
	t.Run("group", func(t *testing.T) {
		run(t, func(h messaging.Handler) (messaging.Subscription, error) {
			return c.Subscribe(t.Context(), topic, h, messaging.Group(integration.UniqueName(t, "g")), messaging.StartAt(messaging.Latest))
		})
	})
	t.Run("read", func(t *testing.T) {
		run(t, func(h messaging.Handler) (messaging.Subscription, error) {
			return c.Read(t.Context(), topic, messaging.Latest, h)
		})
	})
}
