package checkpoint_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/msgkit/messaging/patterns/checkpoint"
)

func TestStores(t *testing.T) {
	dir, err := checkpoint.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]checkpoint.Store{"memory": &checkpoint.Memory{}, "dir": dir} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, ok, err := s.Load(ctx, "a"); ok || err != nil {
				t.Fatalf("empty store: ok=%v err=%v", ok, err)
			}
			want := checkpoint.Checkpoint{Position: "42", ETag: `"etag"`, State: []byte(`{"n":1}`)}
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
			if got, _, _ := s.Load(ctx, "a"); got.Position != "43" || len(got.State) != 0 {
				t.Fatalf("after overwrite: %+v", got)
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if err := s.Save(cancelled, "a", want); err == nil {
				t.Error("Save with a cancelled context succeeded")
			}
		})
	}
}

func TestDirSurvivesReopenAndRejectsBadNames(t *testing.T) {
	path := t.TempDir()
	d, _ := checkpoint.NewDir(path)
	if err := d.Save(context.Background(), "view", checkpoint.Checkpoint{Position: "7"}); err != nil {
		t.Fatal(err)
	}
	d2, _ := checkpoint.NewDir(path)
	if cp, ok, err := d2.Load(context.Background(), "view"); !ok || err != nil || cp.Position != "7" {
		t.Fatalf("reopened: %+v %v %v", cp, ok, err)
	}
	for _, bad := range []string{"../escape", "/abs", "a//b", "a/", "a/../b", "a\\b"} {
		if err := d.Save(context.Background(), bad, checkpoint.Checkpoint{}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	// middleware/poll's "topic/group": a file per group in a directory per topic.
	if err := d.Save(context.Background(), "orders/g", checkpoint.Checkpoint{Position: "9"}); err != nil {
		t.Fatal(err)
	}
	if cp, ok, err := d2.Load(context.Background(), "orders/g"); !ok || err != nil || cp.Position != "9" {
		t.Fatalf("orders/g: %+v %v %v", cp, ok, err)
	}
	if _, err := os.Stat(filepath.Join(path, "orders", "g.json")); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) != ".json" {
			t.Errorf("leftover file %s", e.Name())
		}
	}
}

// TestMemoryCopiesState: Memory keeps its own copy of a saved state and
// hands out copies, so that the caller's buffer changing after Save, or
// a loaded state changing, leaves the saved checkpoint as it was.
func TestMemoryCopiesState(t *testing.T) {
	var m checkpoint.Memory
	ctx := context.Background()
	state := []byte("abc")
	if err := m.Save(ctx, "n", checkpoint.Checkpoint{Position: "1", State: state}); err != nil {
		t.Fatal(err)
	}
	state[0] = 'X'
	cp, _, err := m.Load(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	cp.State[1] = 'Y'
	if cp, _, _ := m.Load(ctx, "n"); string(cp.State) != "abc" {
		t.Fatalf("saved state %q, want %q", cp.State, "abc")
	}
}
