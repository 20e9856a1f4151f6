package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestCallerIDs: with WithCallerIDs, JetStream Publish and PublishAsync
// leave a message without an ID as it is and send it without a header
// block; a consumer names it "<stream>:<sequence>" with the time the stream
// stored it; a caller's ID still travels as Nats-Msg-Id and is
// deduplicated.
func TestCallerIDs(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithCallerIDs())
	ctx := t.Context()
	topic := integration.UniqueName(t, "callerids")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	integration.PublishWithoutIDs(t, c, topic)
	withID := &messaging.Message{ID: "mine-1", Payload: []byte("mine")}
	if err := c.Publish(ctx, topic, withID); err != nil {
		t.Fatal(err)
	}
	again := &messaging.Message{ID: "mine-1", Payload: []byte("mine again")}
	if err := c.Publish(ctx, topic, again); !errors.Is(err, messaging.ErrDuplicate) {
		t.Fatalf("republishing ID mine-1: %v, want ErrDuplicate", err)
	}

	stream := c.StreamName(topic)
	js, err := c.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]time.Time{}
	for seq := uint64(1); seq <= 3; seq++ {
		raw, err := js.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		if seq <= 2 && len(raw.Header) != 0 {
			t.Fatalf("message %d (%q) stored with headers %v, want none", seq, raw.Data, raw.Header)
		}
		stored[seq] = raw.Time
	}
	if n, err := js.Info(ctx); err != nil || n.State.Msgs != 3 {
		t.Fatalf("stream holds %v messages (%v), want 3 (the duplicate dropped)", n, err)
	}

	// How consumers name them (RedeliveryKeepsID, in the conformance
	// suite, checks that a redelivery keeps the name).
	want := map[string]struct {
		id string
		at time.Time
	}{
		"bare":  {fmt.Sprintf("%s:1", stream), stored[1]},
		"async": {fmt.Sprintf("%s:2", stream), stored[2]},
		"mine":  {"mine-1", stored[3]},
	}
	for _, m := range integration.ConsumeEarliest(t, c, topic, 3) {
		w := want[string(m.Payload)]
		if m.ID != w.id || !m.Time.Equal(w.at) {
			t.Errorf("%q delivered as ID %q at %v, want ID %q at %v", m.Payload, m.ID, m.Time, w.id, w.at)
		}
	}
}
