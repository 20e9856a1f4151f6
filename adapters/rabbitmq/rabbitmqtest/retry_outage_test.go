package rabbitmqtest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
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
// was cut (every redial refused) fails with messaging.ErrUnavailable within
// about unavailable_timeout of the cut, the client then requeueing the
// message instead, rather than waiting for a reconnect until the engine's
// settle timeout (10s) ends.
func TestDelayedRetryWhileUnreachable(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, u.String())
	p := fault.NewProxy(t, u.Host)
	pu := *u
	pu.Host = p.Addr()
	failed := make(chan error, 4) // the client's "delayed retry failed" warnings
	c := rabbitmqtest.Open(t, pu.String()+"?unavailable_timeout=1s",
		rabbitmq.WithLogger(slog.New(logErrors{slog.Default().Handler(), "delayed retry failed", failed})))
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	if err := direct.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)

	held := newHolder()
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error {
		held.hold()
		return messaging.RetryAfter(errors.New("later"), time.Second)
	}, messaging.Group(group), messaging.Concurrency(1))
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

	p.Cut()
	cut := time.Now()
	held.release() // the handler asks for a delayed retry
	select {
	case err := <-failed:
		took := time.Since(cut)
		t.Logf("the delayed retry failed %v after the cut: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("the delayed retry with the broker unreachable: %v, want an error wrapping messaging.ErrUnavailable", err)
		}
		if limit := fault.AdminUnavailableTimeout + fault.AdminMargin; took > limit {
			t.Errorf("the delayed retry failed %v after the cut, want within %v", took.Round(time.Millisecond), limit)
		}
	case <-time.After(fault.AdminGiveUp + 5*time.Second):
		t.Errorf("the delayed retry with the broker unreachable had not failed %v after the cut", fault.AdminGiveUp+5*time.Second)
	}
}
