package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
)

// TestCoalescedRequestOutlivesItsAttempt: a coalesced request whose
// caller gave up on it (its first message's deadline passed while a
// pipeline held it) may still be looked at by the pipeline, its unwanted
// check called, while the caller sends the next attempt. The check must
// work then: it used to call the variable the caller had just cleared (a
// data race, and a nil function call). The test plays the coalescing
// goroutine, so it decides when the pipeline looks at each request; no
// server is reached.
func TestCoalescedRequestOutlivesItsAttempt(t *testing.T) {
	const timeout = 300 * time.Millisecond
	rc := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	c, err := New(rc, WithCoalescing(1), WithUnavailableTimeout(timeout), WithCloseClient(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.co.close() // the test is the coalescing goroutine
	co := &coalescer{c: c, reqs: make(chan *pubReq), stop: make(chan struct{})}
	c.co = co
	take := func(what string) *pubReq {
		t.Helper()
		select {
		case r := <-co.reqs:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no request for %s", what)
			return nil
		}
	}

	results := make(chan error, 3)
	done := func(_ *messaging.Message, err error) { results <- err }
	ctx := context.Background()
	publish := func() {
		m := messaging.NewMessage(nil)
		m.Key = "k"
		c.PublishAsync(ctx, "t", m, done)
	}
	// m0 holds the one lane while m1 and, a third of the timeout later,
	// m2 queue behind it: one batch whose messages' deadlines differ.
	publish()
	r0 := take("m0")
	publish()
	time.Sleep(timeout / 3) // the queue times differ: the subject, not a wait for an event
	publish()
	close(r0.done) // m0 acknowledged
	r1 := take("the batch of m1 and m2")
	if len(r1.xadds) != 2 || r1.unwanted == nil {
		t.Fatalf("first attempt: %d messages, unwanted set %v; want 2 and true", len(r1.xadds), r1.unwanted != nil)
	}
	// Held until m1's deadline passes: its caller gives up on r1 and
	// sends m2 again, alone.
	r2 := take("m2's second attempt")
	if len(r2.xadds) != 1 {
		t.Fatalf("second attempt: %d messages, want 1", len(r2.xadds))
	}
	// The pipeline only now looks at r1.
	for j := range r1.xadds {
		if err := r1.unwanted(j); err != nil {
			t.Errorf("r1.unwanted(%d) = %v, want nil: the message's ctx is live and the client open", j, err)
		}
	}
	close(r1.done)
	close(r2.done)
	var got []error
	for range 3 {
		got = append(got, <-results)
	}
	if got[0] != nil || !errors.Is(got[1], messaging.ErrUnavailable) || got[2] != nil {
		t.Errorf("results %v, want nil, ErrUnavailable, nil", got)
	}
}
