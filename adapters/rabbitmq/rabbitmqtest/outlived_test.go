package rabbitmqtest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// AMQP 0-9-1 queue methods (class 50) the holder can hold back.
const (
	queueDeclare = 10
	queueDelete  = 40
)

// frameHolder is a client's TCP connection that holds back the first
// queue.declare or queue.delete frame naming a given queue: the broker
// never sees it, so the call that sent it waits for the answer, until
// release sends it. The connection's other frames (other channels, the
// heartbeats) go on.
type frameHolder struct {
	net.Conn
	method uint16 // queueDeclare or queueDelete
	queue  string
	held   chan struct{} // closed when the frame is held

	mu      sync.Mutex // serialises writes to Conn
	buf     []byte     // written bytes not yet a whole frame
	header  bool       // the protocol header has gone
	holding []byte     // the held frame, until release
	done    bool       // the frame was held (and maybe released)
}

func (h *frameHolder) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, b...)
	var out []byte
	if !h.header {
		if len(h.buf) < 8 {
			return len(b), nil
		}
		out, h.buf, h.header = append(out, h.buf[:8]...), h.buf[8:], true
	}
	// A frame: type (1), channel (2), size (4), payload, 0xCE.
	for len(h.buf) >= 7 {
		size := int(binary.BigEndian.Uint32(h.buf[3:7]))
		if len(h.buf) < 8+size {
			break
		}
		frame := h.buf[:8+size]
		h.buf = h.buf[8+size:]
		if !h.done && h.matches(frame[7:7+size]) && frame[0] == 1 {
			h.holding, h.done = append([]byte(nil), frame...), true
			close(h.held)
			continue
		}
		out = append(out, frame...)
	}
	if len(out) > 0 {
		if _, err := h.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// matches reports whether a method frame's payload is h's method on h's
// queue: class (2), method (2), a reserved short, the queue's name
// (shortstr).
func (h *frameHolder) matches(p []byte) bool {
	if len(p) < 7 || binary.BigEndian.Uint16(p[0:2]) != 50 || binary.BigEndian.Uint16(p[2:4]) != h.method {
		return false
	}
	n := int(p[6])
	return len(p) >= 7+n && string(p[7:7+n]) == h.queue
}

// release sends the held frame.
func (h *frameHolder) release(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holding == nil {
		return
	}
	if _, err := h.Conn.Write(h.holding); err != nil {
		t.Errorf("send the held frame: %v", err)
	}
	h.holding = nil
}

// openHolding opens a client whose connection holds back the first frame
// of method on queue, and whose debug log sends each record whose message
// contains waitMsg to waited.
func openHolding(t *testing.T, method uint16, queue, waitMsg string, waited chan<- error) (*rabbitmq.Client, *frameHolder) {
	t.Helper()
	h := &frameHolder{method: method, queue: queue, held: make(chan struct{})}
	var dialled sync.Once
	dial := func(network, addr string) (net.Conn, error) {
		conn, err := amqp.DefaultDial(30*time.Second)(network, addr)
		if err != nil {
			return nil, err
		}
		first := false
		dialled.Do(func() { first = true })
		if !first {
			return conn, nil // a reconnect: held back nothing
		}
		h.Conn = conn
		return h, nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := rabbitmq.Open(ctx, rabbitmqtest.Broker.Endpoint(t),
		rabbitmq.WithAMQPConfig(amqp.Config{Dial: dial}),
		rabbitmq.WithLogger(slog.New(logErrors{slog.DiscardHandler, waitMsg, waited})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.release(t)
		_ = c.Close()
	})
	return c, h
}

// The debug record of a call that waits for the work that outlived an
// earlier call on its topic.
const outlivedWait = "waiting for work on the topic that outlived its call"

// outlived is a client whose first call on a topic outlived its context:
// the call sent a frame on queue that the connection held back, its
// context was cancelled, and it returned context.Canceled.
type outlived struct {
	c      *rabbitmq.Client
	h      *frameHolder
	raw    *amqp.Connection
	topic  string
	group  string
	queue  string // the group's queue
	waited chan error
}

// outlive opens the client, makes prepare's calls on it, then first (on
// the topic and group) with a context it cancels once the frame of method
// on the group's queue is held back.
func outlive(t *testing.T, method uint16, prepare func(o *outlived), first func(o *outlived, ctx context.Context) error) *outlived {
	t.Helper()
	o := &outlived{topic: integration.UniqueName(t, "outlived"), group: integration.UniqueName(t, "g"), waited: make(chan error, 1)}
	o.queue = o.topic + "~" + o.group
	o.c, o.h = openHolding(t, method, o.queue, outlivedWait, o.waited)
	o.raw = rawConn(t, rabbitmqtest.Broker.Endpoint(t))
	prepare(o)
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() { res <- first(o, ctx) }()
	<-o.h.held
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("a call whose context was cancelled while the broker had not answered: %v, want context.Canceled", err)
	}
	return o
}

// then makes call (named what) on o's client and returns its error,
// failing the test if it returns before it logs that it waits for the
// first call's work: only then is the held frame released.
func (o *outlived) then(t *testing.T, what string, call func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- call(ctx) }()
	select {
	case err := <-res:
		o.h.release(t)
		t.Fatalf("%s returned (%v) before the work that outlived the first call was answered", what, err)
	case <-o.waited:
	}
	o.h.release(t)
	return <-res
}

// TestDeleteTopicAfterOutlivedProvision: a Provision whose context ends
// while the broker has not yet answered the declaration of its group queue
// returns, and the declaration goes on. A DeleteTopic made on the same
// client after that must delete the queue the declaration makes: it waits
// for the Provision's work. It used to run at once, before the
// declaration, which then left the queue on the broker.
func TestDeleteTopicAfterOutlivedProvision(t *testing.T) {
	o := outlive(t, queueDeclare, func(o *outlived) {
		t.Cleanup(func() { // what a failing run leaves
			ch, err := o.raw.Channel()
			if err == nil {
				_, _ = ch.QueueDelete(o.queue, false, false, false)
				_ = ch.ExchangeDelete(o.topic, false, false)
				_, _ = ch.QueueDelete(o.topic+"~~queues", false, false, false)
				_ = ch.Close()
			}
		})
	}, func(o *outlived, ctx context.Context) error {
		return o.c.Provision(ctx, o.topic, o.group)
	})
	if err := o.then(t, "DeleteTopic", func(ctx context.Context) error { return o.c.DeleteTopic(ctx, o.topic) }); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if queueExists(t, o.raw, o.queue) {
		t.Errorf("group queue %q exists after DeleteTopic", o.queue)
	}
	if exchangeExists(t, o.raw, o.topic) {
		t.Errorf("exchange %q exists after DeleteTopic", o.topic)
	}
	if reg := o.topic + "~~queues"; queueExists(t, o.raw, reg) {
		t.Errorf("registry queue %q exists after DeleteTopic", reg)
	}
}

// outlivedDeletion is outlive for a provisioned topic's DeleteTopic, held
// at the deletion of the group's queue.
func outlivedDeletion(t *testing.T) *outlived {
	return outlive(t, queueDelete, func(o *outlived) {
		if err := o.c.Provision(t.Context(), o.topic, o.group); err != nil {
			t.Fatal(err)
		}
		deleteAtEnd(t, o.c, o.topic)
	}, func(o *outlived, ctx context.Context) error {
		return o.c.DeleteTopic(ctx, o.topic)
	})
}

// TestProvisionAfterOutlivedDeleteTopic: the other way round. A DeleteTopic
// whose context ends while the broker has not yet answered the deletion of
// a group queue returns, and the deletion goes on. A Provision made on the
// same client after that must find its queue and exchange in place when it
// returns: it waits for the deletion, which used to delete them after it.
func TestProvisionAfterOutlivedDeleteTopic(t *testing.T) {
	o := outlivedDeletion(t)
	if err := o.then(t, "Provision", func(ctx context.Context) error { return o.c.Provision(ctx, o.topic, o.group) }); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if !queueExists(t, o.raw, o.queue) {
		t.Errorf("group queue %q missing after Provision", o.queue)
	}
	if !exchangeExists(t, o.raw, o.topic) {
		t.Errorf("exchange %q missing after Provision", o.topic)
	}
}

// TestPublishAfterOutlivedDeleteTopic: a Publish made after a DeleteTopic
// that outlived its call (as in TestProvisionAfterOutlivedDeleteTopic; the
// client had published to the topic before) waits for the deletion and
// declares the topic again, rather than sending to the exchange the
// deletion removes later: no queue is bound then, so it fails with
// ErrUnroutable, as on a topic without groups. It used to succeed at once,
// its message routed to a group queue about to be deleted: lost, though
// Publish said it was stored.
func TestPublishAfterOutlivedDeleteTopic(t *testing.T) {
	o := outlivedDeletion(t)
	err := o.then(t, "Publish", func(ctx context.Context) error {
		return o.c.Publish(ctx, o.topic, &messaging.Message{Payload: []byte("after")})
	})
	if !errors.Is(err, rabbitmq.ErrUnroutable) {
		t.Fatalf("Publish: %v, want ErrUnroutable (the topic has no group left)", err)
	}
	if queueExists(t, o.raw, o.queue) {
		t.Errorf("group queue %q exists after the deletion", o.queue)
	}
	if !exchangeExists(t, o.raw, o.topic) {
		t.Errorf("exchange %q missing after Publish", o.topic)
	}
}

func exchangeExists(t *testing.T, conn *amqp.Connection, name string) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ch.Close() }()
	return ch.ExchangeDeclarePassive(name, amqp.ExchangeTopic, true, false, false, false, nil) == nil
}
