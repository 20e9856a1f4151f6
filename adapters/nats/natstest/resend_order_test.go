package natstest_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestPublishAsyncResendKeepsOrder: messages of one key given to
// PublishAsync after their stream was deleted behind the client (which
// still has it cached) find no stream and are sent again once it is
// created again; they are stored in the order of the calls, as the
// messages of one Publish call are in the same case.
func TestPublishAsyncResendKeepsOrder(t *testing.T) {
	c := natstest.Open(t)
	other := natstest.Open(t)
	topic := integration.UniqueName(t, "resend")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, messaging.NewMessage([]byte("first"))); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
	const n = 300
	var failed failures
	for i := range n {
		m := &messaging.Message{Key: "k", Payload: []byte(strconv.Itoa(i))}
		c.PublishAsync(ctx, topic, m, failed.done)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	failed.none(t, "after Flush")
	stored := make(chan int, n)
	sub, err := c.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		v, err := strconv.Atoi(string(m.Payload))
		if err != nil {
			t.Errorf("unexpected message %q", m.Payload)
		}
		stored <- v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []int
	for len(got) < n {
		select {
		case v := <-stored:
			got = append(got, v)
		case <-ctx.Done():
			t.Fatalf("%d of %d messages read: %v", len(got), n, ctx.Err())
		}
	}
	if !slices.IsSorted(got) {
		inversions := 0
		for i := 1; i < len(got); i++ {
			if got[i] < got[i-1] {
				inversions++
			}
		}
		t.Fatalf("stored out of order (%d inversions), starting %v", inversions, got[:min(20, len(got))])
	}
}
