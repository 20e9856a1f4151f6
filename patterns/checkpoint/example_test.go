package checkpoint_test

import (
	"context"
	"fmt"
	"os"

	"github.com/msgkit/messaging/patterns/checkpoint"
)

// A Dir store keeps each checkpoint in a file, replaced atomically, so a
// restarted reader resumes where it stopped.
func ExampleNewDir() {
	dir, err := os.MkdirTemp("", "checkpoints")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := checkpoint.NewDir(dir)
	if err != nil {
		panic(err)
	}
	if err := store.Save(ctx, "dashboard", checkpoint.Checkpoint{Position: "42"}); err != nil {
		panic(err)
	}

	restarted, err := checkpoint.NewDir(dir) // another process, later
	if err != nil {
		panic(err)
	}
	cp, ok, err := restarted.Load(ctx, "dashboard")
	if err != nil {
		panic(err)
	}
	fmt.Println(ok, cp.Position)
	_, ok, _ = restarted.Load(ctx, "never-saved")
	fmt.Println(ok)
	// Output:
	// true 42
	// false
}
