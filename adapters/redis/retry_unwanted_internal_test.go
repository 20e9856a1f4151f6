package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestRetryDropsUnwanted: without coalescing, a PublishAsync message whose
// attempt failed (its connection broke, unanswered) is sent again by the
// next attempt only while it is still wanted: once its ctx has ended it
// fails with ctx's error, unsent, as with coalescing
// (TestCoalescedRetryDropsUnwanted) and on the other adapters. The retry
// used to send it and report it published.
func TestRetryDropsUnwanted(t *testing.T) {
	written, hold := make(chan struct{}), make(chan struct{})
	sent := make(chan string, 1)
	c, err := New(flakyClient(t, -1, hold, written, sent), WithUnavailableTimeout(time.Minute), WithCloseClient(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	results := make(chan error, 1)
	c.PublishAsync(ctx, "t", messaging.NewMessage([]byte("unwanted")), func(_ *messaging.Message, err error) { results <- err })
	select {
	case <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt was not written within 10s")
	}
	cancel()
	close(hold) // the first attempt fails: its connection breaks, unanswered
	select {
	case err = <-results:
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s")
	}
	select {
	case p := <-sent:
		t.Errorf("sent %q on a retry (result %v), although its ctx ended before it: want it failed unsent", p, err)
	default:
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("result %v, want an error wrapping context.Canceled", err)
	}
}

// TestDropUnwanted: the messages still wanted keep their order and their
// indexes; each dropped one gets its own unsent error.
func TestDropUnwanted(t *testing.T) {
	msgs := make([]*messaging.Message, 5)
	for i := range msgs {
		msgs[i] = messaging.NewMessage([]byte{byte('a' + i)})
	}
	gone := errors.New("gone")
	drop := func(set ...int) func(int) error {
		return func(i int) error {
			for _, j := range set {
				if i == j {
					return gone
				}
			}
			return nil
		}
	}
	if send, at, errs := dropUnwanted(msgs, drop()); errs != nil || send != nil || at != nil {
		t.Errorf("none dropped: send %d, at %v, errs %v; want nothing", len(send), at, errs)
	}
	send, at, errs := dropUnwanted(msgs, drop(1, 3))
	var payloads string
	for _, m := range send {
		payloads += string(m.Payload)
	}
	if payloads != "ace" || len(at) != 3 || at[0] != 0 || at[1] != 2 || at[2] != 4 {
		t.Errorf("send %q at %v, want \"ace\" at [0 2 4]", payloads, at)
	}
	for i, err := range errs {
		if dropped := i == 1 || i == 3; dropped != (err != nil) || dropped && (!errors.Is(err, gone) || !unsent(err)) {
			t.Errorf("errs[%d] = %v", i, err)
		}
	}
	if send, _, errs := dropUnwanted(msgs, drop(0, 1, 2, 3, 4)); len(send) != 0 || len(errs) != 5 {
		t.Errorf("all dropped: send %d, errs %d; want 0, 5", len(send), len(errs))
	}
}
