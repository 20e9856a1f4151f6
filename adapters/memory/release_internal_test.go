package memory

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestStopReleasesAtOnce: once a subscription stopped while it held
// messages (one interrupted in its handler, one fetched and queued behind
// it), both are available to the group's next fetch at once, not after a
// delay, as driver.Release and a zero-delay Nack ask: the group's next
// fetch, right after Close returned, gets them.
func TestStopReleasesAtOnce(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	const topic = "stop-releases-at-once"
	StopHoldingTwo(t, c, topic)
	tp := c.b.topic(topic)
	tp.mu.Lock()
	g := tp.groups["g"]
	tp.mu.Unlock()
	ds, _, _, err := tp.fetch(g, 0, 10, time.Minute, 0, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.msg.ID)
	}
	if !slices.Equal(got, []string{"handled", "queued"}) {
		t.Errorf("the group's fetch right after the stop got %v, want [handled queued]", got)
	}
}

// StopHoldingTwo publishes messages "handled" and "queued" to topic with
// one key, subscribes group "g" (one worker) until the first is in its
// handler and the second queued behind it, then stops the subscription:
// the handler is interrupted and the queued message released. It is
// exported for the external tests of this package.
func StopHoldingTwo(t *testing.T, c *Client, topic string) {
	t.Helper()
	msgs := []*messaging.Message{{ID: "handled", Key: "k"}, {ID: "queued", Key: "k"}} // one key: the second waits
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, func(ctx context.Context, _ *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group("g"), messaging.Concurrency(1), messaging.Prefetch(8))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never got a message")
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
}
