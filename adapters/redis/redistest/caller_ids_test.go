package redistest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// TestCallerIDs: with WithCallerIDs, Publish and PublishAsync leave a
// message without an ID as it is and write it as the one field "payload";
// a consumer gets the entry ID as ID and the entry ID's millisecond as
// Time; a caller's ID and Time still travel.
func TestCallerIDs(t *testing.T) {
	c := redistest.Open(t, redisadapter.WithCallerIDs())
	ctx := t.Context()
	topic := integration.UniqueName(t, "callerids")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	integration.PublishWithoutIDs(t, c, topic)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	mine := &messaging.Message{ID: "mine-1", Time: at, Payload: []byte("mine")}
	if err := c.Publish(ctx, topic, mine); err != nil {
		t.Fatal(err)
	}

	entries, err := c.Redis().XRange(ctx, c.StreamKey(topic), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("stream holds %d entries, want 3", len(entries))
	}
	for _, e := range entries[:2] {
		if len(e.Values) != 1 || e.Values["payload"] == nil {
			t.Fatalf("entry %s has fields %v, want payload only", e.ID, e.Values)
		}
	}
	entryTime := func(id string) time.Time {
		ms, _, _ := strings.Cut(id, "-")
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			t.Fatalf("entry ID %q: %v", id, err)
		}
		return time.UnixMilli(n)
	}
	want := map[string]struct {
		id string
		at time.Time
	}{
		"bare":  {entries[0].ID, entryTime(entries[0].ID)},
		"async": {entries[1].ID, entryTime(entries[1].ID)},
		"mine":  {"mine-1", at},
	}

	// RedeliveryKeepsID, in the conformance suite, checks that a
	// redelivery keeps the ID and Time.
	for _, m := range integration.ConsumeEarliest(t, c, topic, 3) {
		w := want[string(m.Payload)]
		if m.ID != w.id || !m.Time.Equal(w.at) {
			t.Errorf("%q delivered as ID %q at %v, want ID %q at %v", m.Payload, m.ID, m.Time, w.id, w.at)
		}
	}
}
