package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// endedSub is a Subscription that has already ended with err, as a Read
// does when the handler fails the message after the --count limit.
type endedSub struct{ err error }

func (s endedSub) Close() error                   { return nil }
func (s endedSub) Shutdown(context.Context) error { return nil }
func (s endedSub) Err() error                     { return s.err }
func (s endedSub) Done() <-chan struct{}          { c := make(chan struct{}); close(c); return c }

var _ messaging.Subscription = endedSub{}

// TestPrinterLimitReachedWinsOverTheEndedRead: once --count messages were
// printed, the command succeeds even if the read has meanwhile ended with
// the error its handler gave the message after the limit (replay --count N
// on a log longer than N). wait used to pick either at random, so replay
// --count sometimes failed with "limit reached".
func TestPrinterLimitReachedWinsOverTheEndedRead(t *testing.T) {
	for i := range 100 {
		p, err := newPrinter(io.Discard, outputFlags{printFlags: printFlags{Count: 1}})
		if err != nil {
			t.Fatal(err)
		}
		m := &messaging.Message{ID: "1", Payload: []byte("x")}
		if err := p.handler(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		herr := p.handler(t.Context(), &messaging.Message{ID: "2"})
		if herr == nil {
			t.Fatal("the message after the limit was accepted")
		}
		if err := p.wait(t.Context(), endedSub{err: herr}, 0); err != nil {
			t.Fatalf("run %d: wait after the limit was reached returned %v, want nil", i, err)
		}
	}
	// A read that ends with an error before the limit still fails.
	p, _ := newPrinter(io.Discard, outputFlags{printFlags: printFlags{Count: 2}})
	boom := errors.New("boom")
	if err := p.wait(t.Context(), endedSub{err: boom}, 0); !errors.Is(err, boom) {
		t.Fatalf("wait on a read that failed before the limit: %v, want boom", err)
	}
}

// runningSub is a Subscription that has not ended.
type runningSub struct{ done chan struct{} }

func (s runningSub) Close() error                   { return nil }
func (s runningSub) Shutdown(context.Context) error { return nil }
func (s runningSub) Err() error                     { return nil }
func (s runningSub) Done() <-chan struct{}          { return s.done }

// TestPrinterIdleCountsFromTheLastMessage: --idle is the time without a
// message: a message that arrives within it starts it again, so wait ends
// no sooner than --idle after that message. Time is the subject: the
// message comes after a pause shorter than --idle.
func TestPrinterIdleCountsFromTheLastMessage(t *testing.T) {
	const idle = 300 * time.Millisecond
	p, err := newPrinter(io.Discard, outputFlags{Idle: idle})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		if err := p.wait(t.Context(), runningSub{done: make(chan struct{})}, idle); err != nil {
			t.Errorf("wait: %v", err)
		}
		ended <- time.Now()
	}()
	time.Sleep(idle * 2 / 3)
	arrived := time.Now()
	if err := p.handler(t.Context(), &messaging.Message{ID: "1", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if d := (<-ended).Sub(arrived); d < idle {
		t.Fatalf("wait ended %v after a message, want at least --idle (%v)", d, idle)
	}
}
