package rabbitmqtest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestDelayedRetryWhileUnreachable: a handler's delayed retry (RetryAfter:
// a copy published to the group's TTL queue) settled after the connection
// was cut (every redial refused) ends within about unavailable_timeout of
// the cut, rather than waiting for a reconnect until the engine's settle
// timeout (10s) ends: it fails with messaging.ErrUnavailable, the client
// then requeueing the message instead, or Settle stops waiting for it with
// ErrUnavailable (the broker answered nothing for unavailable_timeout), or
// (when the client has noticed the loss by then) it is given up at once,
// no copy sent; the broker requeues the message with the connection's
// loss.
func TestDelayedRetryWhileUnreachable(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, u.String())
	p := fault.NewProxy(t, u.Host)
	pu := *u
	pu.Host = p.Addr()
	failed := make(chan error, 4)  // the client's "delayed retry failed" warnings
	settled := make(chan error, 4) // its "settling failed" (the delivery's channel gone)
	c := rabbitmqtest.Open(t, pu.String()+"?unavailable_timeout=1s",
		rabbitmq.WithLogger(slog.New(logErrors{logErrors{slog.Default().Handler(), "settling failed", settled}, "delayed retry failed", failed})))
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	if err := direct.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)

	held := newHolder()
	subscribeHeld(t, c, direct, topic, group, held, func(context.Context, *messaging.Message) error {
		held.hold()
		return messaging.RetryAfter(errors.New("later"), time.Second)
	})

	p.Cut()
	cut := time.Now()
	held.release() // the handler asks for a delayed retry
	limit := fault.AdminUnavailableTimeout + fault.AdminMargin
	retryFailed := func(err error) {
		took := time.Since(cut)
		t.Logf("the delayed retry failed %v after the cut: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("the delayed retry with the broker unreachable: %v, want an error wrapping messaging.ErrUnavailable", err)
		}
		if took > limit {
			t.Errorf("the delayed retry failed %v after the cut, want within %v", took.Round(time.Millisecond), limit)
		}
	}
	select {
	case err := <-failed:
		retryFailed(err)
	case err := <-settled:
		select {
		case err := <-failed: // logged first: the requeue's failure followed it
			retryFailed(err)
			return
		default:
		}
		if errors.Is(err, messaging.ErrUnavailable) {
			// Settle stopped waiting for the delayed retry: the broker
			// answered nothing for unavailable_timeout.
			retryFailed(err)
			return
		}
		// Given up, no copy sent: the delivery's channel was gone.
		took := time.Since(cut)
		t.Logf("the delayed retry was given up %v after the cut: %v", took.Round(time.Millisecond), err)
		if took > limit {
			t.Errorf("the delayed retry was given up %v after the cut, want within %v", took.Round(time.Millisecond), limit)
		}
	case <-time.After(fault.AdminGiveUp + 5*time.Second):
		t.Errorf("the delayed retry with the broker unreachable had neither failed nor been given up %v after the cut", fault.AdminGiveUp+5*time.Second)
	}
}

// TestDelayedRetryAfterBriefOutage: a delayed retry (RetryAfter) settled
// after its delivery's connection was cut, the broker reachable again
// within unavailable_timeout, is not published as a delayed copy too: the
// broker requeued the original when the connection dropped, and that is
// the redelivery (its delay lost). Before the fix the copy was published
// on the new connection and the original's ack failed on the dead
// channel, so the message came back twice: at once, and after the delay.
func TestDelayedRetryAfterBriefOutage(t *testing.T) {
	const delay = 3 * time.Second
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, u.String())
	p := fault.NewProxy(t, u.Host)
	pu := *u
	pu.Host = p.Addr()
	c := rabbitmqtest.Open(t, pu.String()+"?unavailable_timeout=5s")
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	if err := direct.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)

	held := newHolder()
	var first sync.Once
	redelivered := make(chan int, 16) // the Attempt of each delivery after the first
	subscribeHeld(t, c, direct, topic, group, held, func(_ context.Context, m *messaging.Message) error {
		isFirst := false
		first.Do(func() { isFirst = true })
		if isFirst {
			held.hold()
			return messaging.RetryAfter(errors.New("later"), delay)
		}
		redelivered <- m.Attempt
		return nil
	})

	p.Cut()
	held.release()                     // the handler asks for a delayed retry, its channel gone
	time.Sleep(300 * time.Millisecond) // the outage's length, well within unavailable_timeout
	p.Restore()
	restored := time.Now()

	var got int
	select {
	case a := <-redelivered:
		got++
		t.Logf("redelivered %v after the restore (Attempt %d)", time.Since(restored).Round(time.Millisecond), a)
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not redelivered within 30s of the restore")
	}
	// A second delivery, the delayed copy besides the requeued original,
	// would come about delay after the reconnect.
	window := time.After(delay + 3*time.Second)
	for done := false; !done; {
		select {
		case a := <-redelivered:
			got++
			t.Logf("redelivered %v after the restore (Attempt %d)", time.Since(restored).Round(time.Millisecond), a)
		case <-window:
			done = true
		}
	}
	if got != 1 {
		t.Errorf("the message was redelivered %d times after a delayed retry settled across a %v outage, want once (the requeued original or the delayed copy, not both)", got, 300*time.Millisecond)
	}
}

// subscribeHeld subscribes h to topic in group on c (one handler at a
// time), publishes a message with direct and returns once held holds it
// (h calls held.hold).
func subscribeHeld(t *testing.T, c, direct messaging.Client, topic, group string, held *holder, h messaging.Handler) {
	t.Helper()
	sub, err := c.Subscribe(t.Context(), topic, h, messaging.Group(group), messaging.Concurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	t.Cleanup(held.release)
	if err := direct.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("retry")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.got:
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not delivered")
	}
}
