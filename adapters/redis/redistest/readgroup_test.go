package redistest_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// TestGroupReadReplies: a group subscription decodes the same messages
// whether its reads go out as plain commands, decoded by the adapter (a
// client's default ReadTimeout), or through go-redis's typed XReadGroup (a
// ReadTimeout too short for a plain read blocked for the block time), over
// RESP2 and RESP3 alike: the adapter's own entries and a foreign one.
func TestGroupReadReplies(t *testing.T) {
	for _, protocol := range []int{2, 3} {
		for _, reads := range []struct {
			name        string
			readTimeout time.Duration
		}{{"plain", 0}, {"typed", 1500 * time.Millisecond}} {
			t.Run(fmt.Sprintf("RESP%d/%s", protocol, reads.name), func(t *testing.T) {
				o, err := goredis.ParseURL(redistest.Broker.Endpoint(t))
				if err != nil {
					t.Fatal(err)
				}
				o.Protocol, o.ReadTimeout = protocol, reads.readTimeout
				rc := goredis.NewClient(o)
				t.Cleanup(func() { _ = rc.Close() })
				c, err := redisadapter.New(rc)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				checkGroupRead(t, c, rc)
			})
		}
	}
}

func checkGroupRead(t *testing.T, c *redisadapter.Client, rc goredis.UniversalClient) {
	ctx := t.Context()
	topic := integration.UniqueName(t, "replies")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	at := time.Unix(1700000000, 123456789)
	want := []*messaging.Message{
		{ID: "id-1", Key: "k", Payload: []byte("one"), Header: messaging.Header{"h": "v", "x": ""}, Time: at},
		{ID: "id-2", Payload: []byte{}, Time: at},
	}
	if err := c.Publish(ctx, topic, want[0], want[1]); err != nil {
		t.Fatal(err)
	}
	foreign, err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: c.StreamKey(topic), Values: []any{"payload", "three", "foo", "bar"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ms, seq int64
	if _, err := fmt.Sscanf(foreign, "%d-%d", &ms, &seq); err != nil {
		t.Fatalf("entry ID %q: %v", foreign, err)
	}
	// Not written by the adapter: its ID is the entry's, its Time the ID's.
	want = append(want, &messaging.Message{ID: foreign, Payload: []byte("three"), Header: messaging.Header{"foo": "bar"}, Time: time.UnixMilli(ms)})

	got := make(chan *messaging.Message, len(want))
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}, messaging.Group(integration.UniqueName(t, "g")), messaging.StartAt(messaging.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i, w := range want {
		var m *messaging.Message
		select {
		case m = <-got:
		case <-time.After(30 * time.Second):
			t.Fatalf("message %d not delivered within 30s", i)
		}
		if m.ID != w.ID || m.Key != w.Key || string(m.Payload) != string(w.Payload) || m.Payload == nil ||
			!maps.Equal(m.Header, w.Header) || !m.Time.Equal(w.Time) || m.Offset == "" || m.Attempt != 1 {
			t.Errorf("message %d = %+v, want %+v (with an offset, attempt 1)", i, m, w)
		}
	}
}
