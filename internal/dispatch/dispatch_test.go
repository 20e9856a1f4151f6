package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

func TestClassify(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		err          error
		attempt, max int
		want         Outcome
		delay        time.Duration
	}{
		{nil, 1, 0, Ack, 0},
		{boom, 1, 0, Nack, 0},
		{messaging.RetryAfter(boom, time.Second), 1, 0, Nack, time.Second},
		{messaging.Permanent(boom), 1, 0, Term, 0},
		{boom, 3, 3, Term, 0},
		{boom, 2, 3, Nack, 0},
	} {
		r := Classify(tc.err, tc.attempt, tc.max)
		if r.Outcome != tc.want || r.Delay != tc.delay {
			t.Errorf("Classify(%v, %d, %d) = %v/%v, want %v/%v", tc.err, tc.attempt, tc.max, r.Outcome, r.Delay, tc.want, tc.delay)
		}
	}
}

func TestInvokeRecoversPanic(t *testing.T) {
	r := Invoke(t.Context(), func(context.Context, *messaging.Message) error { panic("oops") }, &messaging.Message{Attempt: 1}, 0)
	if r.Outcome != Nack || !errors.Is(r.Err, messaging.ErrHandlerPanic) {
		t.Fatalf("panic gave %v %v", r.Outcome, r.Err)
	}
}

// TestPoolKeepsPerKeyOrder: with 4 workers and a handler that takes longer
// for some keys, each key's messages are still handled in submission order.
func TestPoolKeepsPerKeyOrder(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]int{}
	var wg sync.WaitGroup
	h := func(_ context.Context, m *messaging.Message) error {
		if m.Key == "k0" {
			time.Sleep(time.Millisecond) // make one key slow so others overtake it
		}
		var n int
		fmt.Sscan(string(m.Payload), &n)
		mu.Lock()
		seen[m.Key] = append(seen[m.Key], n)
		mu.Unlock()
		return nil
	}
	p := NewPool(t.Context(), 4, 16, h, func(Delivery, Result) { wg.Done() }, 0)
	const keys, per = 6, 50
	for i := range per {
		for k := range keys {
			wg.Add(1)
			p.Submit(t.Context(), Delivery{Msg: &messaging.Message{Key: fmt.Sprintf("k%d", k), Payload: []byte(fmt.Sprint(i))}})
		}
	}
	wg.Wait()
	p.Close()
	for k, seq := range seen {
		if len(seq) != per {
			t.Fatalf("key %s: %d messages, want %d", k, len(seq), per)
		}
		for i := range seq {
			if seq[i] != i {
				t.Fatalf("key %s handled out of order: %v", k, seq)
			}
		}
	}
}

// TestPoolCloseReleasesQueued: Close lets the running handler finish and
// settles the deliveries still queued with Release, each exactly once.
func TestPoolCloseReleasesQueued(t *testing.T) {
	started, unblock := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	outcomes := map[string]Outcome{}
	h := func(_ context.Context, m *messaging.Message) error {
		if m.ID == "first" {
			close(started)
			<-unblock
		}
		return nil
	}
	p := NewPool(t.Context(), 1, 8, h, func(d Delivery, r Result) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := outcomes[d.Msg.ID]; dup {
			t.Errorf("%s settled twice", d.Msg.ID)
		}
		outcomes[d.Msg.ID] = r.Outcome
	}, 0)
	p.Submit(t.Context(), Delivery{Msg: &messaging.Message{ID: "first"}})
	<-started
	for i := range 3 {
		p.Submit(t.Context(), Delivery{Msg: &messaging.Message{ID: fmt.Sprint("queued-", i)}})
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was still running")
	case <-time.After(50 * time.Millisecond): // absence over a short window: Close must be blocked
	}
	close(unblock)
	<-closed
	if outcomes["first"] != Ack {
		t.Errorf("running handler's message: %v, want ack", outcomes["first"])
	}
	for i := range 3 {
		if o := outcomes[fmt.Sprint("queued-", i)]; o != Release {
			t.Errorf("queued-%d: %v, want release", i, o)
		}
	}
}

// TestSubmitHonoursContext: a full queue blocks Submit until ctx is done.
func TestSubmitHonoursContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	p := NewPool(t.Context(), 1, 1, func(context.Context, *messaging.Message) error { <-block; return nil }, func(Delivery, Result) {}, 0)
	defer func() { go p.Close() }()
	p.Submit(t.Context(), Delivery{Msg: &messaging.Message{}}) // taken by the worker or queued
	p.Submit(t.Context(), Delivery{Msg: &messaging.Message{}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var ok bool
	for range 3 {
		ok = p.Submit(ctx, Delivery{Msg: &messaging.Message{}})
		if !ok {
			break
		}
	}
	if ok {
		t.Fatal("Submit into a full pool succeeded after its context ended")
	}
}

func TestSubscriptionFinishTreatsOwnCancelAsClean(t *testing.T) {
	s := NewSubscription(t.Context(), nil)
	s.Stop()
	s.Finish(context.Canceled)
	<-s.Done()
	if s.Err() != nil {
		t.Fatalf("Err %v after own stop", s.Err())
	}
	s2 := NewSubscription(t.Context(), nil)
	boom := errors.New("broker gone")
	s2.Finish(boom)
	if !errors.Is(s2.Err(), boom) {
		t.Fatalf("Err %v, want %v", s2.Err(), boom)
	}
	var set Set
	set.CloseAll()
	if err := set.Add(NewSubscription(t.Context(), nil)); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("Add after CloseAll: %v", err)
	}
}

// TestSubmitRefusesWhenDone: a done context is refused even with room in the
// queue, so a stopping fetch loop keeps the delivery and releases it.
func TestSubmitRefusesWhenDone(t *testing.T) {
	p := NewPool(t.Context(), 1, 8, func(context.Context, *messaging.Message) error { return nil }, func(Delivery, Result) {}, 0)
	defer p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if p.Submit(ctx, Delivery{Msg: &messaging.Message{}}) {
		t.Fatal("Submit took a delivery with a done context")
	}
}

// TestHandlerContextDone: once the handler context is done, Submit refuses
// deliveries even when the caller's context still looks live (a parent's
// Done closes before its children are cancelled), and a delivery queued
// before that is released, not handled.
func TestHandlerContextDone(t *testing.T) {
	handlerCtx, cancel := context.WithCancel(t.Context())
	started, unblock, queuedDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	handled, outcomes := map[string]bool{}, map[string]Outcome{}
	h := func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		handled[m.ID] = true
		mu.Unlock()
		if m.ID == "running" {
			close(started)
			<-unblock
		}
		return nil
	}
	p := NewPool(handlerCtx, 1, 8, h, func(d Delivery, r Result) {
		mu.Lock()
		outcomes[d.Msg.ID] = r.Outcome
		mu.Unlock()
		if d.Msg.ID == "queued" {
			close(queuedDone)
		}
	}, 0)
	p.Submit(t.Context(), Delivery{Msg: &messaging.Message{ID: "running"}})
	<-started
	if !p.Submit(t.Context(), Delivery{Msg: &messaging.Message{ID: "queued"}}) {
		t.Fatal("Submit refused a delivery while both contexts were live")
	}
	cancel()
	if p.Submit(t.Context(), Delivery{Msg: &messaging.Message{ID: "late"}}) {
		t.Error("Submit took a delivery after the handler context ended")
	}
	close(unblock)
	<-queuedDone // settled by the worker, not by Close
	p.Close()
	if handled["queued"] || outcomes["queued"] != Release {
		t.Errorf("queued before the handler context ended: handled %v, outcome %v; want released unhandled", handled["queued"], outcomes["queued"])
	}
	if _, ok := outcomes["late"]; ok {
		t.Error("the refused delivery was settled by the pool; its caller owns it")
	}
}

// TestInvokeBatchAfterHandlerContextEnded: a batch whose handler context has
// ended is released unhandled; with a live context every message gets its
// own outcome.
func TestInvokeBatchAfterHandlerContextEnded(t *testing.T) {
	calls := 0
	h := func(_ context.Context, msgs []*messaging.Message) []error {
		calls++
		return []error{nil, errors.New("again")}
	}
	msgs := []*messaging.Message{{ID: "a", Attempt: 1}, {ID: "b", Attempt: 1}}
	live := InvokeBatch(t.Context(), h, msgs, 0)
	if calls != 1 || live[0].Outcome != Ack || live[1].Outcome != Nack {
		t.Fatalf("live context: %d calls, outcomes %v %v; want 1 call, ack and nack", calls, live[0].Outcome, live[1].Outcome)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i, r := range InvokeBatch(ctx, h, msgs, 0) {
		if r.Outcome != Release {
			t.Errorf("message %d after the context ended: %v, want release", i, r.Outcome)
		}
	}
	if calls != 1 {
		t.Errorf("handler called %d times, want once (not after the context ended)", calls)
	}
}
