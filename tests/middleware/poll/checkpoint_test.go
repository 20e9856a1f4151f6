package poll_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging/adapters/redis/redisstore"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// The Redis store keeps a whole checkpoint.Checkpoint (position, ETag and
// state), and reads a cursor saved as a plain string (by the former
// redisstore.CursorStore) as the position.
func TestRedisCheckpointStore(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	rc := redisClient(t)
	prefix := integration.UniqueName(t, "cp") + ":"
	t.Cleanup(func() { rc.Del(context.Background(), prefix+"a", prefix+"legacy") })
	s := redisstore.NewCheckpointStore(rc, prefix)
	if err := rc.Set(ctx, prefix+"legacy", "cursor-7", 0).Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]checkpoint.Checkpoint{
		"a":      {Position: "42", ETag: `W/"e"`, State: []byte(`{"n":1}`)},
		"legacy": {Position: "cursor-7"},
	}
	if err := s.Save(ctx, "a", want["a"]); err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		got, ok, err := s.Load(ctx, name)
		if err != nil || !ok || got.Position != w.Position || got.ETag != w.ETag || string(got.State) != string(w.State) {
			t.Errorf("Load(%s) = %+v %v %v, want %+v", name, got, ok, err, w)
		}
	}
	if _, ok, err := s.Load(ctx, "none"); ok || err != nil {
		t.Errorf("Load of a name never saved: ok=%v err=%v", ok, err)
	}
}
