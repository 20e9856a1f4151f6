package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// fakeBroker plays a channel's side of acknowledgements: it knows which
// delivery tags are outstanding and fails the test when an ack covers a
// delivery whose handler has not succeeded.
type fakeBroker struct {
	t           *testing.T
	mu          sync.Mutex
	outstanding map[uint64]bool // delivered, not settled
	succeeded   map[uint64]bool // the handler returned nil
	acked       map[uint64]int
	nacked      map[uint64]int
	dead        map[uint64]int // nacked without requeue (dead-lettered)
	frames      int            // basic.ack frames
	multiples   int            // of which multiple=true
	cancels     int            // consumer cancels
	failAfter   int            // > 0: the channel breaks at this ack frame
	sent        chan struct{}
}

// newFakeBroker returns a fake channel on which tags 1..n are delivered.
func newFakeBroker(t *testing.T, n int) *fakeBroker {
	f := &fakeBroker{t: t, outstanding: map[uint64]bool{}, succeeded: map[uint64]bool{},
		acked: map[uint64]int{}, nacked: map[uint64]int{}, sent: make(chan struct{}, 1)}
	for tag := uint64(1); tag <= uint64(n); tag++ {
		f.deliver(tag)
	}
	return f
}

func (f *fakeBroker) deliver(tag uint64) {
	f.mu.Lock()
	f.outstanding[tag] = true
	f.mu.Unlock()
}

// waitSent waits for the next ack frame.
func (f *fakeBroker) waitSent() {
	f.t.Helper()
	select {
	case <-f.sent:
	case <-time.After(10 * time.Second):
		f.t.Fatal("no ack sent")
	}
}

// succeed records that tag's handler succeeded, before the acker hears of it.
func (f *fakeBroker) succeed(tag uint64) {
	f.mu.Lock()
	f.succeeded[tag] = true
	f.mu.Unlock()
}

// feed delivers tags 1..n to tags and closes it; like a broker, it keeps
// at most prefetch deliveries unsettled, waiting while prefetch tags are
// outstanding.
func (f *fakeBroker) feed(tags chan<- uint64, n, prefetch int) {
	for tag := uint64(1); tag <= uint64(n); tag++ {
		for {
			f.mu.Lock()
			out := len(f.outstanding)
			f.mu.Unlock()
			if out < prefetch {
				break
			}
			// Wait for the acker's next send (or poll for a nack).
			select {
			case <-f.sent:
			case <-time.After(time.Millisecond):
			}
		}
		f.deliver(tag)
		tags <- tag
	}
	close(tags)
}

var errBroken = errors.New("channel broken")

func (f *fakeBroker) Ack(tag uint64, multiple bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAfter > 0 && f.frames+1 >= f.failAfter {
		return errBroken
	}
	f.frames++
	covered := []uint64{tag}
	if multiple {
		f.multiples++
		covered = covered[:0]
		for t := range f.outstanding {
			if t <= tag {
				covered = append(covered, t)
			}
		}
	}
	if !f.outstanding[tag] {
		f.t.Errorf("ack(%d, %v): tag not outstanding (acked %d, nacked %d times)", tag, multiple, f.acked[tag], f.nacked[tag])
	}
	for _, t := range covered {
		if !f.succeeded[t] {
			f.t.Errorf("ack(%d, %v) covers tag %d whose handler has not succeeded", tag, multiple, t)
		}
		delete(f.outstanding, t)
		f.acked[t]++
	}
	select {
	case f.sent <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeBroker) nack(tag uint64) func() error {
	return func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.outstanding[tag] {
			f.t.Errorf("nack(%d): tag not outstanding", tag)
		}
		delete(f.outstanding, tag)
		f.nacked[tag]++
		return nil
	}
}

// TestAckerRandom settles tags concurrently and out of order with random
// outcomes (success, nack, nack after a delay) and checks, on a fake broker
// that applies multiple acks as RabbitMQ does, that every success is acked
// exactly once, no failure is acked, and, with one worker (in order) and no
// delayed nacks, that acks were batched. (With several workers a tag whose
// worker is descheduled holds the run back, and the successes behind it are
// acked one by one.)
func TestAckerRandom(t *testing.T) {
	for _, c := range []struct {
		prefetch, workers int
		delayed           bool
	}{{1, 8, true}, {10, 8, true}, {100, 8, true}, {100, 1, true}, {100, 1, false}} {
		prefetch, workers := c.prefetch, c.workers
		const n = 3000
		start := time.Now()
		f := newFakeBroker(t, 0)
		a := newAcker(f, prefetch, ackDelay)
		tags := make(chan uint64, prefetch)
		var wg, delayed sync.WaitGroup
		for w := range workers {
			rnd := rand.New(rand.NewPCG(uint64(prefetch), uint64(w)))
			wg.Go(func() {
				for tag := range tags {
					switch r := rnd.IntN(100); {
					case r < 90:
						f.succeed(tag)
						if err := a.ack(tag); err != nil {
							t.Error(err)
						}
					case r < 99 || !c.delayed:
						_ = a.settle(tag, f.nack(tag))
					default:
						delayed.Add(1)
						time.AfterFunc(time.Duration(rnd.IntN(3000))*time.Microsecond, func() {
							defer delayed.Done()
							_ = a.settle(tag, f.nack(tag))
						})
					}
				}
			})
		}
		f.feed(tags, n, prefetch)
		wg.Wait()
		delayed.Wait()
		if err := a.close(true); err != nil {
			t.Fatal(err)
		}
		if len(f.outstanding) != 0 {
			t.Errorf("prefetch %d: %d tags left unsettled after close", prefetch, len(f.outstanding))
		}
		for tag := range f.succeeded {
			if f.acked[tag] != 1 || f.nacked[tag] != 0 {
				t.Errorf("prefetch %d: successful tag %d acked %d, nacked %d times", prefetch, tag, f.acked[tag], f.nacked[tag])
			}
		}
		for tag, k := range f.nacked {
			if k != 1 || f.acked[tag] != 0 {
				t.Errorf("prefetch %d: failed tag %d nacked %d, acked %d times", prefetch, tag, k, f.acked[tag])
			}
		}
		t.Logf("prefetch %d, %d workers, delayed nacks %v: %d successes acked in %d frames (%d multiple), %v", prefetch, workers, c.delayed, len(f.succeeded), f.frames, f.multiples, time.Since(start))
		if workers == 1 && !c.delayed && f.frames > len(f.succeeded)/4 {
			t.Errorf("prefetch %d: %d ack frames for %d successes: not batched", prefetch, f.frames, len(f.succeeded))
		}
	}
}

// TestAckerBlockedRun: successes behind a running handler are not covered by
// a multiple ack; the delayed flush acks them one by one, and the run
// continues with a multiple ack once the blocking tag is settled.
func TestAckerBlockedRun(t *testing.T) {
	f := newFakeBroker(t, 10)
	a := newAcker(f, 100, ackDelay) // batch 25: only the delay or close flush
	for tag := uint64(2); tag <= 4; tag++ {
		f.succeed(tag)
		_ = a.ack(tag)
	}
	f.waitSent() // the delayed flush
	a.tick()     // waits for the flush in progress
	f.mu.Lock()
	if f.frames != 3 || f.multiples != 0 || !f.outstanding[1] {
		t.Errorf("behind running tag 1: %d frames, %d multiple, tag 1 outstanding %v; want 3 single acks", f.frames, f.multiples, f.outstanding[1])
	}
	f.mu.Unlock()
	_ = a.settle(1, f.nack(1))
	a.mu.Lock()
	a.delay = time.Hour // only close flushes from here on
	a.mu.Unlock()
	for tag := uint64(5); tag <= 9; tag++ {
		f.succeed(tag)
		_ = a.ack(tag)
	}
	if err := a.close(true); err != nil {
		t.Fatal(err)
	}
	if f.frames != 4 || f.multiples != 1 || f.acked[9] != 1 || !f.outstanding[10] {
		t.Errorf("after the nack: %d frames (%d multiple); want one multiple ack for 5..9 and tag 10 outstanding", f.frames, f.multiples)
	}
	// Nothing is sent after close.
	f.succeed(10)
	if err := a.ack(10); err == nil {
		t.Error("ack after close: no error")
	}
	if f.acked[10] != 0 {
		t.Error("ack sent after close")
	}
}

// TestAckerBrokenChannel: once a send fails, waiting acks are dropped and
// nothing more is sent.
func TestAckerBrokenChannel(t *testing.T) {
	f := newFakeBroker(t, 100)
	f.failAfter = 2
	a := newAcker(f, 8, time.Hour) // batch 2, no delayed flush
	for tag := uint64(1); tag <= 6; tag++ {
		f.succeed(tag)
		_ = a.ack(tag)
	}
	if f.frames != 1 || f.acked[1] != 1 || f.acked[2] != 1 {
		t.Fatalf("%d frames, acked %v; want one multiple ack of 1..2", f.frames, f.acked)
	}
	if err := a.close(true); !errors.Is(err, errBroken) {
		t.Errorf("close after a failed send: %v, want the send's error", err)
	}
	if f.frames != 1 || len(f.outstanding) != 98 {
		t.Errorf("after the failure: %d frames, %d outstanding", f.frames, len(f.outstanding))
	}
}

// TestAckerCloseDrops: close(false), for a lost channel, sends nothing.
func TestAckerCloseDrops(t *testing.T) {
	f := newFakeBroker(t, 10)
	a := newAcker(f, 100, time.Hour)
	f.succeed(1)
	_ = a.ack(1)
	_ = a.close(false)
	a.tick()
	if f.frames != 0 {
		t.Errorf("%d ack frames after close(false)", f.frames)
	}
}

// Nack and Reject make fakeBroker an amqp.Acknowledger, so that Settle's
// nacks (sent through the delivery) reach it.
func (f *fakeBroker) Nack(tag uint64, multiple, requeue bool) error {
	if multiple {
		f.t.Errorf("nack(%d) with multiple", tag)
	}
	f.mu.Lock()
	if !requeue {
		f.dead[tag]++
	}
	f.mu.Unlock()
	return f.nack(tag)()
}

func (f *fakeBroker) Reject(tag uint64, requeue bool) error { return f.Nack(tag, false, requeue) }

// Cancel counts consumer cancels (a release cancels the consumer first).
func (f *fakeBroker) Cancel(string, bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels++
	return nil
}

// TestSettleRandom drives the acknowledgements the way the engine does:
// several workers finish deliveries out of order with random outcomes and
// queue them; one settler goroutine hands whatever is queued to
// receiver.Settle as a batch. On a fake broker that applies multiple acks as
// RabbitMQ does, a multiple ack never covers a running or failed delivery;
// successes (and Terms without a dead-letter exchange) are acked exactly
// once, nacks and releases requeued once, Terms with one rejected; and with
// one worker the acks are batched.
func TestSettleRandom(t *testing.T) {
	for _, c := range []struct {
		prefetch, workers int
		deadLetter        string
	}{{1, 4, ""}, {10, 4, "dlx"}, {100, 8, ""}, {100, 1, "dlx"}} {
		const n = 3000
		f := newFakeBroker(t, 0)
		f.dead = map[uint64]int{}
		a := newAcker(f, c.prefetch, ackDelay)
		cons := &consumer{ch: f, tag: "ctag"}
		r := &receiver{c: &Client{cfg: config{logger: slog.Default(), deadLetter: c.deadLetter}}, topic: "t", queue: "t~g"}
		settle := make(chan driver.Settlement, c.prefetch)
		settled := make(chan struct{})
		go func() { // the engine's settler: batches of what is queued
			defer close(settled)
			var batch []driver.Settlement
			for st := range settle {
				batch = append(batch[:0], st)
				for more := true; more && len(batch) < 16; {
					select {
					case st, ok := <-settle:
						if ok {
							batch = append(batch, st)
						} else {
							more = false
						}
					default:
						more = false
					}
				}
				if err := r.Settle(context.Background(), batch); err != nil {
					t.Error(err)
				}
			}
		}()
		tags := make(chan uint64, c.prefetch)
		want := map[driver.Outcome]int{}
		var wantMu sync.Mutex
		var wg sync.WaitGroup
		for w := range c.workers {
			rnd := rand.New(rand.NewPCG(uint64(c.prefetch), uint64(w)))
			wg.Go(func() {
				for tag := range tags {
					out := driver.Ack
					switch r := rnd.IntN(100); {
					case r < 85:
					case r < 92:
						out = driver.Nack
					case r < 96:
						out = driver.Release
					default:
						out = driver.Term
					}
					if out == driver.Ack || (out == driver.Term && c.deadLetter == "") {
						f.succeed(tag) // the broker may see it acked from now on
					}
					wantMu.Lock()
					want[out]++
					wantMu.Unlock()
					d := amqp.Delivery{Acknowledger: f, DeliveryTag: tag}
					settle <- driver.Settlement{Delivery: driver.Delivery{Msg: &messaging.Message{ID: fmt.Sprint(tag)}, Token: &token{d: d, a: a, c: cons}}, Outcome: out}
				}
			})
		}
		f.feed(tags, n, c.prefetch)
		wg.Wait()
		close(settle)
		<-settled
		if err := a.close(true); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		acked, requeued, dead := 0, 0, 0
		for tag := range f.acked {
			if f.acked[tag] != 1 || f.nacked[tag] != 0 || !f.succeeded[tag] {
				t.Errorf("tag %d acked %d times, nacked %d times", tag, f.acked[tag], f.nacked[tag])
			}
			acked++
		}
		for tag, k := range f.nacked {
			if k != 1 {
				t.Errorf("tag %d nacked %d times", tag, k)
			}
			if f.dead[tag] > 0 {
				dead++
			} else {
				requeued++
			}
		}
		if len(f.outstanding) != 0 {
			t.Errorf("%d tags left unsettled", len(f.outstanding))
		}
		if wantCancels := min(want[driver.Release], 1); f.cancels != wantCancels {
			t.Errorf("consumer cancelled %d times for %d releases, want %d", f.cancels, want[driver.Release], wantCancels)
		}
		wantAcked, wantDead := want[driver.Ack], 0
		if c.deadLetter == "" {
			wantAcked += want[driver.Term]
		} else {
			wantDead = want[driver.Term]
		}
		if acked != wantAcked || requeued != want[driver.Nack]+want[driver.Release] || dead != wantDead {
			t.Errorf("acked %d, requeued %d, dead-lettered %d; want %d, %d, %d", acked, requeued, dead, wantAcked, want[driver.Nack]+want[driver.Release], wantDead)
		}
		t.Logf("prefetch %d, %d workers: %d acked in %d frames (%d multiple), %d requeued, %d dead-lettered", c.prefetch, c.workers, acked, f.frames, f.multiples, requeued, dead)
		if c.workers == 1 && c.prefetch >= 10 && f.frames > acked/4 {
			t.Errorf("%d ack frames for %d acks: not batched", f.frames, acked)
		}
		f.mu.Unlock()
	}
}
