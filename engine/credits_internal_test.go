package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// credits hands out what it holds up to the limit asked for, blocks the
// taker while it holds none until a put or the context's end, and a put
// of a whole settled batch is seen at once.
func TestCredits(t *testing.T) {
	c := credits{wake: make(chan struct{}, 1)}
	c.put(5)
	if got, err := c.take(context.Background(), 3); got != 3 || err != nil {
		t.Fatalf("take(3) of 5 = %d, %v; want 3", got, err)
	}
	if got, err := c.take(context.Background(), 10); got != 2 || err != nil {
		t.Fatalf("take(10) of 2 = %d, %v; want 2", got, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if got, err := c.take(ctx, 1); got != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("take of none = %d, %v; want 0 and the context's error", got, err)
	}

	taken := make(chan int)
	go func() {
		got, _ := c.take(context.Background(), 100)
		taken <- got
	}()
	select {
	case got := <-taken:
		t.Fatalf("take returned %d while there were no credits", got)
	case <-time.After(20 * time.Millisecond): // still blocked, as it must be
	}
	c.put(100)
	if got := <-taken; got != 100 {
		t.Fatalf("blocked take(100) after put(100) = %d; want 100", got)
	}
	c.put(0) // no-op
	c.put(-1)
	if c.n != 0 {
		t.Fatalf("credits left = %d; want 0", c.n)
	}
}
