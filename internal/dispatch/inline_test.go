package dispatch

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestInlineOnlyWhenIdle: Inline runs a delivery in the caller's goroutine
// only with one worker and nothing pending: not while the worker runs or
// holds an earlier delivery (the later one would overtake it), never with
// more than one worker.
func TestInlineOnlyWhenIdle(t *testing.T) {
	started, unblock := make(chan struct{}), make(chan struct{})
	settled := make(chan string, 4)
	h := func(_ context.Context, m *messaging.Message) error {
		if m.ID == "slow" {
			close(started)
			<-unblock
		}
		return nil
	}
	p := NewPool(t.Context(), 1, 4, h, func(d Delivery, _ Result) { settled <- d.Msg.ID }, 0)
	defer p.Close()
	if !p.Submit(t.Context(), Delivery{Msg: &messaging.Message{ID: "slow"}}) {
		t.Fatal("Submit refused")
	}
	<-started
	if p.Inline(Delivery{Msg: &messaging.Message{ID: "early"}}) {
		t.Fatal("Inline ran a delivery beside the worker's")
	}
	close(unblock)
	if id := <-settled; id != "slow" {
		t.Fatalf("settled %s, want slow", id)
	}
	// The worker is idle once its delivery no longer counts as pending.
	for deadline := time.Now().Add(10 * time.Second); p.pending.Load() != 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the worker's delivery still pending 10s after it was settled")
		}
	}
	if !p.Inline(Delivery{Msg: &messaging.Message{ID: "inline"}}) {
		t.Fatal("Inline refused with the worker idle")
	}
	select {
	case id := <-settled: // settled before Inline returned: it ran in this goroutine
		if id != "inline" {
			t.Fatalf("settled %s, want inline", id)
		}
	default:
		t.Fatal("Inline returned before its delivery was settled")
	}

	several := NewPool(t.Context(), 2, 4, h, func(Delivery, Result) {}, 0)
	defer several.Close()
	if several.Inline(Delivery{Msg: &messaging.Message{ID: "x"}}) {
		t.Fatal("Inline ran with two workers")
	}
}

// TestInlineNeverBesideTheWorker: with one worker, deliveries given to
// Inline by one goroutine and submitted by another (the fetch loop and the
// engine's local redeliveries) never run at the same time, and those of
// each goroutine run in its order.
func TestInlineNeverBesideTheWorker(t *testing.T) {
	var running, most atomic.Int32
	var mu sync.Mutex
	last := map[string]int{}
	disorder := 0
	h := func(_ context.Context, m *messaging.Message) error {
		n := running.Add(1)
		for {
			if old := most.Load(); n <= old || most.CompareAndSwap(old, n) {
				break
			}
		}
		runtime.Gosched()
		var i int
		fmt.Sscan(string(m.Payload), &i)
		mu.Lock()
		if prev, ok := last[m.Key]; ok && i <= prev {
			disorder++
		}
		last[m.Key] = i
		mu.Unlock()
		running.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	p := NewPool(t.Context(), 1, 8, h, func(Delivery, Result) { wg.Done() }, 0)
	const per = 2000
	wg.Add(2 * per)
	inlined := 0
	go func() {
		for i := range per {
			p.Submit(t.Context(), Delivery{Msg: &messaging.Message{Key: "submitted", Payload: []byte(fmt.Sprint(i))}})
		}
	}()
	for i := range per {
		d := Delivery{Msg: &messaging.Message{Key: "fetched", Payload: []byte(fmt.Sprint(i))}}
		if p.Inline(d) {
			inlined++
		} else {
			p.Submit(t.Context(), d)
		}
	}
	wg.Wait()
	p.Close()
	if m := most.Load(); m != 1 {
		t.Errorf("%d handlers ran at once with one worker", m)
	}
	if disorder > 0 {
		t.Errorf("%d deliveries handled before an earlier one of their goroutine", disorder)
	}
	t.Logf("%d of %d run inline", inlined, per)
}
