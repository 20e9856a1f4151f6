package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// lifecycleFake is a driver (and its one receiver) for the tests of how a
// subscription ends: it records what was settled before Close, and whether
// Close ran while an Extend was in flight.
type lifecycleFake struct {
	caps    messaging.Capabilities
	in      chan *messaging.Message
	recvErr error
	// together makes Receive return every message waiting in in, up to
	// n, not only the first: more than one delivery goes to the worker
	// pool (one alone, with one worker idle, runs in the fetching
	// goroutine).
	together bool
	// extendStarted, if set, gets a value when an Extend begins; that
	// Extend then lasts until its context ends.
	extendStarted chan struct{}

	mu             sync.Mutex
	settled        []driver.Settlement
	settledAtClose int
	inExtend       atomic.Int32
	extendErr      error
	closeInExtend  atomic.Bool
}

func (f *lifecycleFake) Capabilities() messaging.Capabilities { return f.caps }

func (f *lifecycleFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *lifecycleFake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	if f.recvErr != nil {
		return nil, f.recvErr
	}
	select {
	case m := <-f.in:
		ds := []driver.Delivery{{Msg: m, Token: m.ID}}
		for f.together && len(ds) < n {
			select {
			case m := <-f.in:
				ds = append(ds, driver.Delivery{Msg: m, Token: m.ID})
			default:
				return ds, nil
			}
		}
		return ds, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *lifecycleFake) Settle(_ context.Context, b []driver.Settlement) error {
	f.mu.Lock()
	f.settled = append(f.settled, b...)
	f.mu.Unlock()
	return nil
}

func (f *lifecycleFake) Extend(ctx context.Context, ds []driver.Delivery) error {
	f.inExtend.Add(1)
	defer f.inExtend.Add(-1)
	for _, d := range ds {
		_ = d.Msg.Attempt // read as an adapter does (the race detector watches it)
	}
	if f.extendStarted == nil {
		return nil
	}
	select {
	case f.extendStarted <- struct{}{}:
	default:
	}
	<-ctx.Done()
	f.mu.Lock()
	f.extendErr = ctx.Err()
	f.mu.Unlock()
	return ctx.Err()
}

func (f *lifecycleFake) Close(context.Context) error {
	if f.inExtend.Load() > 0 {
		f.closeInExtend.Store(true)
	}
	f.mu.Lock()
	f.settledAtClose = len(f.settled)
	f.mu.Unlock()
	return nil
}

func quietOptions() Options {
	return Options{Name: "fake", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func waitDone(t *testing.T, sub messaging.Subscription) {
	t.Helper()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not finish within 10s")
	}
}

// shutdownGivingUp shuts sub down with a context already ended (Shutdown
// gives up on its handlers at once) and waits until it has finished.
func shutdownGivingUp(t *testing.T, sub messaging.Subscription) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sub.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	waitDone(t, sub)
}

// wantOneSettledBeforeClose checks that one delivery was settled, with
// outcome want, before the receiver was closed.
func (f *lifecycleFake) wantOneSettledBeforeClose(t *testing.T, want driver.Outcome) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.settled) != 1 || f.settledAtClose != 1 || f.settled[0].Outcome != want {
		t.Fatalf("settled %v (%d before Close), want one %v before Close", f.settled, f.settledAtClose, want)
	}
}

// TestShutdownReleaseQueuedBeforeClose: a delivery that Shutdown releases
// (its handler outlived Shutdown's context) is settled before the receiver
// is closed, even when its handler returns, and the subscription winds
// down, while Shutdown is between deciding the release and queuing it.
func TestShutdownReleaseQueuedBeforeClose(t *testing.T) {
	f := &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 1)}
	c := New(f, quietOptions())
	started, released := make(chan struct{}), make(chan struct{})
	var sub messaging.Subscription
	var once sync.Once
	testHookSettling = func() {
		once.Do(func() { // Shutdown's release: let the rest run meanwhile
			close(released)
			select {
			case <-sub.Done():
			case <-time.After(500 * time.Millisecond):
			}
		})
	}
	defer func() { testHookSettling = nil }()
	sub, err := c.Subscribe(t.Context(), "t", func(ctx context.Context, m *messaging.Message) error {
		close(started)
		<-ctx.Done()
		<-released
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	<-started
	shutdownGivingUp(t, sub)
	f.wantOneSettledBeforeClose(t, driver.Release)
}

// TestHandlerOutcomeQueuedBeforeClose: a handler's outcome decided before
// Shutdown gives up (so Shutdown's release finds the delivery settled) is
// queued before the settle queue closes and the receiver is closed, even
// when the handler's goroutine is held up between deciding and queuing
// while the rest of the subscription winds down. It was lost: the
// delivery was never settled, and Kafka's receiver waited for it.
func TestHandlerOutcomeQueuedBeforeClose(t *testing.T) {
	f := &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 1)}
	c := New(f, quietOptions())
	deciding := make(chan struct{})
	var sub messaging.Subscription
	var once sync.Once
	testHookSettling = func() {
		once.Do(func() { // the handler's Ack: hold it up while Shutdown runs
			close(deciding)
			select {
			case <-sub.Done():
			case <-time.After(500 * time.Millisecond):
			}
		})
	}
	defer func() { testHookSettling = nil }()
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	<-deciding
	shutdownGivingUp(t, sub)
	f.wantOneSettledBeforeClose(t, driver.Ack)
}

// TestCloseWaitsForExtend: the receiver is closed only after an Extend in
// flight has returned, and Close cuts that Extend short instead of waiting
// out the settle timeout.
func TestCloseWaitsForExtend(t *testing.T) {
	f := &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 1), extendStarted: make(chan struct{}, 1)}
	c := New(f, quietOptions())
	hold := make(chan struct{})
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error {
		<-hold // held until the engine extends it
		return nil
	}, messaging.AckDeadline(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	select {
	case <-f.extendStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("no Extend within 10s")
	}
	close(hold)
	start := time.Now()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if f.closeInExtend.Load() {
		t.Error("Receiver.Close ran while Extend was in flight")
	}
	if f.inExtend.Load() > 0 {
		t.Error("Close returned while Extend was in flight")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.extendErr == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Extend ended with %v after %v; want it cut short by Close", f.extendErr, time.Since(start))
	}
}

// TestFatalErrorWrappingContextErrorEnds: a Receive error that is not
// transient ends the subscription with it, also when it wraps a context
// error (a driver's own timeout), as long as nobody stopped the
// subscription.
func TestFatalErrorWrappingContextErrorEnds(t *testing.T) {
	for _, batch := range []bool{false, true} {
		f := &lifecycleFake{recvErr: fmt.Errorf("lookup: %w", context.DeadlineExceeded)}
		c := New(f, quietOptions())
		var sub messaging.Subscription
		var err error
		if batch {
			sub, err = c.SubscribeBatch(t.Context(), "t", func(context.Context, []*messaging.Message) []error { return nil })
		} else {
			sub, err = c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil })
		}
		if err != nil {
			t.Fatal(err)
		}
		waitDone(t, sub)
		if !errors.Is(sub.Err(), context.DeadlineExceeded) {
			t.Errorf("batch %v: Err = %v, want the Receive error", batch, sub.Err())
		}
	}
}

// TestShutdownAfterDoneIsNil: Shutdown of a finished subscription returns
// nil, whatever its context.
func TestShutdownAfterDoneIsNil(t *testing.T) {
	f := &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message)}
	c := New(f, quietOptions())
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		if err := sub.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown of a finished subscription = %v, want nil", err)
		}
	}
}

// TestLocalRedeliveryWhileExtending: local redeliveries (BrokerAttempts
// false) replace a held delivery's message while the extender reads the
// held deliveries; run with -race.
func TestLocalRedeliveryWhileExtending(t *testing.T) {
	f := &lifecycleFake{in: make(chan *messaging.Message, 1)}
	c := New(f, quietOptions())
	done := make(chan struct{})
	sub, err := c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
		if m.Attempt < 40 {
			return messaging.RetryAfter(errors.New("again"), 3*time.Millisecond)
		}
		close(done)
		return nil
	}, messaging.AckDeadline(15*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("attempt 40 not reached within 10s")
	}
	_ = sub.Close()
}

// shutdownFake is a lifecycleFake whose Close records whether it ran, and
// whose Receive closes fetchStopped when its context ends.
type shutdownFake struct {
	*lifecycleFake
	receiverClosed atomic.Bool
	fetchStopped   chan struct{}
	stopOnce       sync.Once
}

func (f *shutdownFake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	ds, err := f.lifecycleFake.Receive(ctx, n)
	if ctx.Err() != nil {
		f.stopOnce.Do(func() { close(f.fetchStopped) })
	}
	return ds, err
}

func (f *shutdownFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *shutdownFake) Close(ctx context.Context) error {
	err := f.lifecycleFake.Close(ctx)
	f.receiverClosed.Store(true)
	return err
}

// forcedShutdown starts a subscription (SubscribeBatch with batches of one
// if batch) whose handler fails message "a" with a RetryAfter of a minute
// and blocks on stuck, ignoring its context, for every other message; it
// returns once the handler runs "b", a having been nacked.
func forcedShutdown(t *testing.T, batch bool, caps messaging.Capabilities) (*shutdownFake, *Consumer, messaging.Subscription, chan struct{}) {
	t.Helper()
	f := &shutdownFake{lifecycleFake: &lifecycleFake{caps: caps, in: make(chan *messaging.Message, 2)}, fetchStopped: make(chan struct{})}
	c := New(f, quietOptions())
	started, stuck := make(chan struct{}), make(chan struct{})
	h := func(_ context.Context, m *messaging.Message) error {
		if m.ID == "a" {
			return messaging.RetryAfter(errors.New("later"), time.Minute)
		}
		close(started)
		<-stuck
		return nil
	}
	sub := subscribeOne(t, c, batch, h)
	t.Cleanup(func() {
		select {
		case <-stuck:
		default:
			close(stuck)
		}
	})
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	f.in <- &messaging.Message{ID: "b", Attempt: 1}
	<-started // one worker, in order: a's result was handled before b ran
	return f, c, sub, stuck
}

// A Shutdown whose context ends nacks a message held for its RetryAfter
// delay (the broker keeps no delays) with the delay it has left, as any
// stop does, rather than releasing it: released, another member would get
// it at once and the failed attempt would not count.
func TestForcedShutdownKeepsHeldNackDelay(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "Subscribe", true: "SubscribeBatch"}[batch], func(t *testing.T) {
			f, _, sub, stuck := forcedShutdown(t, batch, messaging.Capabilities{BrokerAttempts: true})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := sub.Shutdown(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Shutdown = %v, want context.Canceled", err)
			}
			close(stuck)
			waitDone(t, sub)
			f.mu.Lock()
			defer f.mu.Unlock()
			got := map[string]driver.Settlement{}
			for _, st := range f.settled {
				got[st.Msg.ID] = st
			}
			if a := got["a"]; a.Outcome != driver.Nack || a.Delay < 50*time.Second {
				t.Errorf("a settled %v with delay %v, want nack with about a minute left", a.Outcome, a.Delay)
			}
			if b := got["b"]; b.Outcome != driver.Release {
				t.Errorf("b (its handler given up on) settled %v, want release", b.Outcome)
			}
		})
	}
}

// After a Shutdown whose context ended, the releases are settled and the
// receiver closed without waiting for the handler Shutdown gave up on (so
// an adapter's Client.Close after it does not cut the releases off, and
// what the receiver holds beyond the engine goes back to the broker), and
// Close waits for exactly that; Done still waits for the handler.
func TestForcedShutdownClosesReceiver(t *testing.T) {
	f, c, sub, stuck := forcedShutdown(t, false, messaging.Capabilities{BrokerAttempts: true, NativeDelay: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	closed := make(chan struct{})
	go func() {
		_ = sub.Close()
		_ = c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the handler Shutdown gave up on")
	}
	if !f.receiverClosed.Load() {
		t.Fatal("Close returned with the receiver still open")
	}
	f.mu.Lock()
	atClose := f.settledAtClose
	f.mu.Unlock()
	if atClose != 2 {
		t.Fatalf("%d settlements before the receiver was closed, want 2 (a's nack and b's release)", atClose)
	}
	select {
	case <-sub.Done():
		t.Fatal("Done closed while a handler still runs")
	default:
	}
	close(stuck)
	waitDone(t, sub)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.settled) != 2 {
		t.Fatalf("settled %v, want a's nack and b's release only (what b's handler returned after Shutdown is ignored)", f.settled)
	}
}

// A Close already waiting for a handler returns once a concurrent Shutdown
// gives up on that handler.
func TestShutdownFreesWaitingClose(t *testing.T) {
	for _, consumer := range []bool{false, true} {
		t.Run(map[bool]string{false: "Subscription.Close", true: "Consumer.Close"}[consumer], func(t *testing.T) {
			f, c, sub, _ := forcedShutdown(t, false, messaging.Capabilities{BrokerAttempts: true, NativeDelay: true})
			closed := make(chan struct{})
			go func() {
				if consumer {
					_ = c.Close()
				} else {
					_ = sub.Close()
				}
				close(closed)
			}()
			// Close stopped fetching and waits (or is about to). The
			// handler of b runs in the fetching goroutine: no Receive
			// sees the stop.
			<-sub.(*subscription).fetchCtx.Done()
			select {
			case <-closed:
				t.Fatal("Close returned while the handler runs")
			default:
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := sub.Shutdown(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Shutdown = %v, want context.Canceled", err)
			}
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close still waits for the handler Shutdown gave up on")
			}
			if !f.receiverClosed.Load() {
				t.Fatal("Close returned with the receiver still open")
			}
		})
	}
}

// blockingCloseFake is a driver whose receivers' Close blocks until its
// context ends, and whose OpenReceiver runs onOpen first.
type blockingCloseFake struct {
	lifecycleFake
	onOpen func()
}

func (f *blockingCloseFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	f.onOpen()
	return f, nil
}

func (f *blockingCloseFake) Close(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// A Subscribe that loses the race with the Consumer's Close closes the
// receiver it opened within the settle timeout, not for as long as a
// broker that does not answer lets it.
func TestSubscribeRacingCloseIsBounded(t *testing.T) {
	o := quietOptions()
	o.SettleTimeout = 200 * time.Millisecond
	f := &blockingCloseFake{}
	c := New(f, o)
	f.onOpen = func() { _ = c.Close() }
	errc := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(context.Background(), "t", func(context.Context, *messaging.Message) error { return nil })
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, messaging.ErrClosed) {
			t.Fatalf("Subscribe = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not return 5s after the Consumer's Close")
	}
}

// slowStopFake is a lifecycleFake whose Receive, once its context has
// ended, returns only when the test closes letGo (a driver slow to notice
// the stop), after closing fetchStopped; it counts Receive calls.
type slowStopFake struct {
	*lifecycleFake
	calls        atomic.Int32
	fetchStopped chan struct{}
	letGo        chan struct{}
	once         sync.Once
}

func (f *slowStopFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *slowStopFake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	f.calls.Add(1)
	ds, err := f.lifecycleFake.Receive(ctx, n)
	if ctx.Err() != nil {
		f.once.Do(func() { close(f.fetchStopped) })
		<-f.letGo
	}
	return ds, err
}

// settledAs returns how id was settled, and whether it was.
func (f *lifecycleFake) settledAs(id string) (driver.Outcome, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.settled {
		if st.Msg.ID == id {
			return st.Outcome, true
		}
	}
	return 0, false
}

// A message that waits for a worker when Close begins is released, not
// handled, even while the fetch loop has not yet returned from a Receive
// that Close cut short.
func TestCloseReleasesQueuedAtOnce(t *testing.T) {
	f := &slowStopFake{lifecycleFake: &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 3), together: true},
		fetchStopped: make(chan struct{}), letGo: make(chan struct{})}
	for _, id := range []string{"a", "b", "c"} { // fetched together: a runs on the worker, b and c wait for it
		f.in <- &messaging.Message{ID: id, Attempt: 1}
	}
	c := New(f, quietOptions())
	first := make(chan struct{})
	ran := make(chan string, 3)
	sub, err := c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
		ran <- m.ID
		if m.ID == "a" {
			<-first
		}
		return nil
	}, messaging.Concurrency(1), messaging.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	if id := <-ran; id != "a" {
		t.Fatalf("handled %s first, want a", id)
	}
	waitFor(t, 10*time.Second, "the fetch loop to ask for more", func() bool { return f.calls.Load() >= 2 })
	closed := make(chan struct{})
	go func() {
		_ = sub.Close()
		close(closed)
	}()
	<-f.fetchStopped // Close began; the fetch loop is held in Receive
	close(first)
	waitFor(t, 10*time.Second, "b to be settled", func() bool { _, ok := f.settledAs("b"); return ok })
	close(f.letGo)
	<-closed
	close(ran)
	for id := range ran {
		t.Errorf("%s was handled after Close began", id)
	}
	for _, id := range []string{"b", "c"} {
		if out, _ := f.settledAs(id); out != driver.Release {
			t.Errorf("%s settled %v, want release", id, out)
		}
	}
}

// slowSettleFake is a lifecycleFake whose Settle waits until its context
// ends (a broker that does not answer).
type slowSettleFake struct{ *lifecycleFake }

func (f *slowSettleFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *slowSettleFake) Settle(ctx context.Context, b []driver.Settlement) error {
	<-ctx.Done()
	return ctx.Err()
}

// Shutdown returns nil when every handler returned before its context
// ended, though settling their outcomes takes longer (up to the settle
// timeout); a Close after it waits for that.
func TestShutdownNilWhenHandlersReturnedInTime(t *testing.T) {
	o := quietOptions()
	o.SettleTimeout = 2 * time.Second
	f := &slowSettleFake{&lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 1)}}
	c := New(f, o)
	ran := make(chan struct{})
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error {
		close(ran)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	<-ran
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil: the handler had returned", err)
	}
	begin := time.Now()
	_ = sub.Close()
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("Close took %v", took)
	}
	select {
	case <-sub.Done():
	default:
		t.Fatal("Close returned before the subscription finished")
	}
}

// leaseFake is a lifecycleFake whose deliveries carry lease as their
// Lease, for a broker that counts no attempts (the engine redelivers in
// process).
type leaseFake struct {
	*lifecycleFake
	lease context.Context
}

func (f *leaseFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *leaseFake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	ds, err := f.lifecycleFake.Receive(ctx, n)
	for i := range ds {
		ds[i].Lease = f.lease
	}
	return ds, err
}

// A message held in process for its RetryAfter delay is released as soon
// as its Lease ends (a Kafka partition revoked), well before its delay:
// the receiver need not wait it out, and the message's new owner is the
// only one to handle it again.
func TestLeaseEndReleasesHeldRetry(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "Subscribe", true: "SubscribeBatch"}[batch], func(t *testing.T) {
			lease, revoke := context.WithCancel(context.Background())
			defer revoke()
			f := &leaseFake{&lifecycleFake{in: make(chan *messaging.Message, 1)}, lease}
			c := New(f, quietOptions())
			var calls atomic.Int32
			h := func(context.Context, *messaging.Message) error {
				calls.Add(1)
				return messaging.RetryAfter(errors.New("later"), time.Minute)
			}
			sub := subscribeOne(t, c, batch, h)
			t.Cleanup(func() { _ = sub.Close() })
			f.in <- &messaging.Message{ID: "a", Attempt: 1}
			waitFor(t, 10*time.Second, "a to be handled", func() bool { return calls.Load() > 0 })
			revoke()
			waitFor(t, 5*time.Second, "a to be settled after its lease's end", func() bool { _, ok := f.settledAs("a"); return ok })
			if out, _ := f.settledAs("a"); out != driver.Release {
				t.Fatalf("a settled %v, want release", out)
			}
			_ = sub.Close()
			if n := calls.Load(); n != 1 {
				t.Fatalf("handled %d times, want once (not again after its lease ended)", n)
			}
		})
	}
}

// subscribeOne subscribes h to topic "t" of c, one message at a time:
// with Subscribe and Concurrency 1, or (batch) with SubscribeBatch and
// batches of one.
func subscribeOne(t *testing.T, c *Consumer, batch bool, h messaging.Handler) messaging.Subscription {
	t.Helper()
	var sub messaging.Subscription
	var err error
	if batch {
		sub, err = c.SubscribeBatch(t.Context(), "t", func(ctx context.Context, ms []*messaging.Message) []error {
			return []error{h(ctx, ms[0])}
		}, messaging.BatchSize(1))
	} else {
		sub, err = c.Subscribe(t.Context(), "t", h, messaging.Concurrency(1))
	}
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// waitFor polls cond every millisecond until it holds, and fails t if it
// does not within timeout (the engine package's tests cannot use
// integration.Eventually, which imports the engine).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
	}
}

// flakyFake is a lifecycleFake whose Receive returns the messages of in
// until it is empty, then a transient error on every call (a broker lost
// after one partial batch); it counts the calls and records when each began.
type flakyFake struct {
	*lifecycleFake
	calls atomic.Int32
	at    []time.Time // guarded by lifecycleFake.mu
}

func (f *flakyFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *flakyFake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	f.mu.Lock()
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	f.calls.Add(1)
	select {
	case m := <-f.in:
		return []driver.Delivery{{Msg: m, Token: m.ID}}, nil
	default:
		return nil, driver.Transient(errors.New("connection lost"))
	}
}

// A partial batch is handed to the handler when BatchWait ends, also while
// the fetch backs off after transient errors, not one backoff later; the
// fetch waits out the rest of that backoff after the handler. The
// BatchWait of a millisecond is far below the shortest backoff (25ms): the
// handler runs before the fetch is retried, between the second Receive
// (the first error) and the third.
func TestPartialBatchAtBatchWaitDuringBackoff(t *testing.T) {
	f := &flakyFake{lifecycleFake: &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 1)}}
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	c := New(f, quietOptions())
	got := make(chan int32, 1)
	sub, err := c.SubscribeBatch(t.Context(), "t", func(_ context.Context, ms []*messaging.Message) []error {
		select {
		case got <- f.calls.Load():
		default:
		}
		return nil
	}, messaging.BatchSize(10), messaging.BatchWait(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case calls := <-got:
		if calls != 2 {
			t.Fatalf("the partial batch was handed over after %d Receive calls, want 2: it waited for the retry of the failed fetch", calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the partial batch was not handed over within 10s")
	}
	waitFor(t, 10*time.Second, "the fetch to be retried", func() bool { return f.calls.Load() >= 3 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.at[2].Sub(f.at[1]); d < 25*time.Millisecond {
		t.Fatalf("the fetch was retried %v after the error, want at least the shortest backoff (25ms)", d)
	}
}

// lateFake is a lifecycleFake whose Receive, once its context has ended,
// waits until the test closes letGo and then returns message "late" (a
// driver that had it when the stop came); its second call closes second,
// and Close closes closed.
type lateFake struct {
	*lifecycleFake
	calls  atomic.Int32
	second chan struct{}
	letGo  chan struct{}
	closed chan struct{}
}

func (f *lateFake) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return f, nil
}

func (f *lateFake) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	if f.calls.Add(1) == 2 {
		close(f.second)
	}
	ds, err := f.lifecycleFake.Receive(ctx, n)
	if ctx.Err() == nil {
		return ds, err
	}
	<-f.letGo
	m := &messaging.Message{ID: "late", Attempt: 1}
	return []driver.Delivery{{Msg: m, Token: m.ID}}, nil
}

func (f *lateFake) Close(ctx context.Context) error {
	err := f.lifecycleFake.Close(ctx)
	close(f.closed)
	return err
}

// TestForcedShutdownReleasesLateReceive: a delivery that a Receive in
// flight returns after a Shutdown gave up on the handlers is released
// before the receiver is closed. The loop used to hold it only after
// letting go of the receiver, so run (waiting for that Receive to close
// the receiver) could release what was held, close the settle queue and
// the receiver first: the loop's release of it then went to a queue
// nobody read, and the delivery was never settled. The test hook lets
// run go first whenever the loop does not hold the receiver any more.
func TestForcedShutdownReleasesLateReceive(t *testing.T) {
	f := &lateFake{lifecycleFake: &lifecycleFake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 2), together: true},
		second: make(chan struct{}), letGo: make(chan struct{}), closed: make(chan struct{})}
	c := New(f, quietOptions())
	var sp atomic.Pointer[subscription] // the first Receive may come before Subscribe returns
	testHookReceived = func() {
		s := sp.Load()
		if s == nil || !s.forced.Load() || !s.recvMu.TryLock() {
			return
		}
		s.recvMu.Unlock()
		<-f.closed // run, waiting for the receiver, goes first
	}
	defer func() { testHookReceived = nil }()
	started, stuck := make(chan struct{}), make(chan struct{})
	// Fetched together, a runs on the worker (b waiting for it) while the
	// loop fetches again.
	f.in <- &messaging.Message{ID: "a", Attempt: 1}
	f.in <- &messaging.Message{ID: "b", Attempt: 1}
	sub := subscribeOne(t, c, false, func(_ context.Context, m *messaging.Message) error {
		if m.ID != "a" {
			t.Errorf("%s handled after a Shutdown gave up on a's handler", m.ID)
			return nil
		}
		close(started)
		<-stuck // ignores its context: Shutdown gives up on it
		return nil
	})
	sp.Store(sub.(*subscription))
	<-started
	<-f.second // the loop waits in Receive
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sub.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	close(f.letGo)
	select {
	case <-f.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver was not closed within 10s")
	}
	close(stuck)
	waitDone(t, sub)
	f.mu.Lock()
	defer f.mu.Unlock()
	got := map[string]driver.Outcome{}
	for _, st := range f.settled[:f.settledAtClose] {
		got[st.Msg.ID] = st.Outcome
	}
	for _, id := range []string{"a", "b", "late"} {
		if out, ok := got[id]; !ok || out != driver.Release {
			t.Errorf("%s settled before Close: %v (%v), want release", id, out, ok)
		}
	}
	if len(f.settled) != 3 {
		t.Errorf("settled %v, want the releases of a, b and late only", f.settled)
	}
}
