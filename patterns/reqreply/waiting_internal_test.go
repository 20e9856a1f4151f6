package reqreply

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
)

// TestDuplicateReplyIsDropped: a second reply with the same correlation ID
// (a request handled twice) finds nobody waiting and is dropped; it does
// not block the reply subscription.
func TestDuplicateReplyIsDropped(t *testing.T) {
	r := &Requester[int, int]{waiting: map[string]chan *messaging.Message{}}
	ch := make(chan *messaging.Message, 1)
	r.waiting["c1"] = ch
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			_ = r.onReply(context.Background(), &messaging.Message{Header: messaging.Header{HeaderCorrelationID: "c1"}})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the duplicate reply blocked the reply handler")
	}
	if len(ch) != 1 {
		t.Fatalf("%d replies handed to the waiting call, want 1", len(ch))
	}
}

// TestRequestForgetsItsWaiter: a Request that got its reply, or gave up,
// leaves no waiter behind.
func TestRequestForgetsItsWaiter(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	sub, err := Serve(ctx, c, "double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	r, err := NewRequester[int, int](ctx, c, WithoutNative())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if got, err := r.Request(ctx, "double", 21); err != nil || got != 42 {
		t.Fatalf("request: %v, %v", got, err)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := r.Request(short, "nobody-serves", 1); !errors.Is(err, ErrTimeout) {
		t.Fatalf("unserved request: %v, want ErrTimeout", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.waiting); n != 0 {
		t.Fatalf("%d waiters left after the requests returned, want 0", n)
	}
}
