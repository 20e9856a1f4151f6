package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// methodRecorder is a channel's side of one delivery's settlement: it
// records the AMQP method each Settle sends.
type methodRecorder struct {
	mu      sync.Mutex
	methods map[uint64]string
	order   []string // every method sent, consumer cancels included
}

func (m *methodRecorder) record(tag uint64, method string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.methods[tag] = method
	m.order = append(m.order, method)
	return nil
}

func (m *methodRecorder) Cancel(consumer string, noWait bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = append(m.order, fmt.Sprintf("basic.cancel %s nowait=%v", consumer, noWait))
	return nil
}

func (m *methodRecorder) Ack(tag uint64, multiple bool) error {
	return m.record(tag, fmt.Sprintf("basic.ack multiple=%v", multiple))
}

func (m *methodRecorder) Nack(tag uint64, multiple, requeue bool) error {
	return m.record(tag, fmt.Sprintf("basic.nack multiple=%v requeue=%v", multiple, requeue))
}

func (m *methodRecorder) Reject(tag uint64, requeue bool) error {
	return m.record(tag, fmt.Sprintf("basic.reject requeue=%v", requeue))
}

// TestSettleMethods pins the AMQP method behind each outcome. RabbitMQ 4.3
// and later count basic.reject toward a quorum queue's delivery limit and
// x-delivery-count, and not basic.nack: a failure must be a reject (or
// MaxAttempts is never reached there), a release a nack (or stopping a
// subscription costs its prefetched messages an attempt), sent after the
// consumer was cancelled (or the broker hands the message back to the
// closing channel, whose close returns it a second time).
func TestSettleMethods(t *testing.T) {
	rec := &methodRecorder{methods: map[uint64]string{}}
	cfg, err := newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.logger = slog.New(slog.DiscardHandler)
	cfg.deadLetter = "dlx"
	r := &receiver{c: &Client{cfg: cfg}, topic: "orders", queue: "orders~billing"}
	acks := newAcker(rec, 1, 0)
	cons := &consumer{ch: rec, tag: "ctag"}
	outcomes := []driver.Outcome{driver.Nack, driver.Release, driver.Term}
	batch := make([]driver.Settlement, len(outcomes))
	for i, o := range outcomes {
		tag := uint64(i + 1)
		batch[i] = driver.Settlement{Outcome: o}
		batch[i].Msg = &messaging.Message{ID: fmt.Sprint(tag)}
		batch[i].Token = &token{d: amqp.Delivery{Acknowledger: rec, DeliveryTag: tag}, a: acks, c: cons}
	}
	if err := r.Settle(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{
		1: "basic.reject requeue=true",               // Nack: a failure
		2: "basic.nack multiple=false requeue=true",  // Release: not a failure
		3: "basic.nack multiple=false requeue=false", // Term with a dead-letter exchange
	}
	for tag, w := range want {
		if got := rec.methods[tag]; got != w {
			t.Errorf("%v: sent %q, want %q", outcomes[tag-1], got, w)
		}
	}
	wantOrder := []string{want[1], "basic.cancel ctag nowait=true", want[2], want[3]}
	if fmt.Sprint(rec.order) != fmt.Sprint(wantOrder) {
		t.Errorf("sent %q, want %q", rec.order, wantOrder)
	}
}

// gatedRecorder is a methodRecorder whose nacks, rejects and cancels wait
// until gate is closed: amqp091 waiting for the connection's send lock,
// which a write the broker does not read holds.
type gatedRecorder struct {
	*methodRecorder
	gate chan struct{}
}

func (g *gatedRecorder) Cancel(consumer string, noWait bool) error {
	<-g.gate
	return g.methodRecorder.Cancel(consumer, noWait)
}

func (g *gatedRecorder) Nack(tag uint64, multiple, requeue bool) error {
	<-g.gate
	return g.methodRecorder.Nack(tag, multiple, requeue)
}

func (g *gatedRecorder) Reject(tag uint64, requeue bool) error {
	<-g.gate
	return g.methodRecorder.Reject(tag, requeue)
}

// TestSettleBoundedByContext: Settle returns when its context ends while
// a send hangs, leaving the settlement to finish in the background; the
// next batch's sends come after it, in order.
func TestSettleBoundedByContext(t *testing.T) {
	rec := &gatedRecorder{methodRecorder: &methodRecorder{methods: map[uint64]string{}}, gate: make(chan struct{})}
	var open sync.Once
	opened := func() { open.Do(func() { close(rec.gate) }) }
	t.Cleanup(opened)
	cfg, err := newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.logger = slog.New(slog.DiscardHandler)
	r := &receiver{c: &Client{cfg: cfg}, topic: "orders", queue: "orders~billing"}
	acks := newAcker(rec, 1, 0)
	cons := &consumer{ch: rec, tag: "ctag"}
	settle := func(tag uint64, o driver.Outcome, timeout time.Duration) error {
		st := driver.Settlement{Outcome: o}
		st.Msg = &messaging.Message{ID: fmt.Sprint(tag)}
		st.Token = &token{d: amqp.Delivery{Acknowledger: rec, DeliveryTag: tag}, a: acks, c: cons}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res := make(chan error, 1)
		go func() { res <- r.Settle(ctx, []driver.Settlement{st}) }()
		select {
		case err := <-res:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("Settle of %v with a hanging send and a %v context has not returned after 5s", o, timeout)
			return nil
		}
	}
	if err := settle(1, driver.Nack, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Settle with a hanging send: %v, want the context's error", err)
	}
	if err := settle(2, driver.Release, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Settle behind a hanging send: %v, want the context's error", err)
	}
	opened()
	// Once the sends go through, a Settle comes after those before it.
	if err := settle(3, driver.Nack, time.Second); err != nil {
		t.Errorf("Settle once the sends go through: %v", err)
	}
	want := []string{"basic.reject requeue=true", "basic.cancel ctag nowait=true", "basic.nack multiple=false requeue=true", "basic.reject requeue=true"}
	if fmt.Sprint(rec.order) != fmt.Sprint(want) {
		t.Errorf("sent %q, want %q", rec.order, want)
	}
}
