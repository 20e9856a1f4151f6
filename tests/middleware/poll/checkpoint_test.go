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

// The Redis store is a checkpoint.Store like Memory and Dir: it keeps the
// position and the ETag, replaces the whole checkpoint on Save, and reads a
// cursor saved as a plain string (by the former redisstore.CursorStore) as
// the position.
func TestRedisCheckpointStore(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	rc := redisClient(t)
	prefix := integration.UniqueName(t, "cp") + ":"
	t.Cleanup(func() { rc.Del(context.Background(), prefix+"a", prefix+"legacy") })
	s := redisstore.NewCheckpointStore(rc, prefix)
	if _, ok, err := s.Load(ctx, "a"); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	want := checkpoint.Checkpoint{Position: "42", ETag: `W/"e"`, State: []byte(`{"n":1}`)}
	if err := s.Save(ctx, "a", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Load(ctx, "a")
	if err != nil || !ok || got.Position != want.Position || got.ETag != want.ETag || string(got.State) != string(want.State) {
		t.Fatalf("Load = %+v %v %v, want %+v", got, ok, err, want)
	}
	if err := s.Save(ctx, "a", checkpoint.Checkpoint{Position: "43"}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Load(ctx, "a"); got.Position != "43" || got.ETag != "" || len(got.State) != 0 {
		t.Fatalf("after overwrite: %+v", got)
	}
	if err := rc.Set(ctx, prefix+"legacy", "cursor-7", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Load(ctx, "legacy"); err != nil || !ok || got.Position != "cursor-7" {
		t.Fatalf("plain cursor: %+v %v %v", got, ok, err)
	}
}
