package natstest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
)

// TestRetryAfterSurvivesOutage: a subscription whose handler fails a
// message with RetryAfter gets it again after an outage longer than the
// two silent heartbeats that make it give up its pull, group-less or in a
// group. The consumer, alive on the server all along and holding the
// nak'ed message for redelivery, is looked up and reused (a group-less
// subscription's ephemeral one is not replaced by a new one starting after
// the message), and the pulls dropped while the connection was down are
// not subscribed again on reconnect (the message would go to their
// requests).
func TestRetryAfterSurvivesOutage(t *testing.T) {
	t.Run("ephemeral", func(t *testing.T) { retryAfterOutage(t) })
	t.Run("group", func(t *testing.T) { retryAfterOutage(t, messaging.Group("g")) })
}

// retryAfterOutage runs TestRetryAfterSurvivesOutage with a subscription
// of opts.
func retryAfterOutage(t *testing.T, opts ...messaging.SubscribeOption) {
	srv, p, c := openProxied(t, time.Second)
	topic := integration.UniqueName(t, "ephretry")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })

	// The subscription's acknowledgements as the server receives them, seen
	// by a connection of its own that bypasses the proxy.
	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	acks, err := nc.SubscribeSync("$JS.ACK." + c.StreamName(topic) + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	attempts := make(chan int, 10)
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		if m.ID != "x" {
			return nil
		}
		attempts <- m.Attempt
		if m.Attempt == 1 {
			return messaging.RetryAfter(errors.New("not yet"), 3*time.Second)
		}
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-attempts:
		if a != 1 {
			t.Fatalf("first delivery of x has Attempt %d, want 1", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("x was not delivered")
	}
	for {
		m, err := acks.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("the server saw no nak of x: %v", err)
		}
		if strings.HasPrefix(string(m.Data), "-NAK") {
			t.Logf("server got %q", m.Data)
			break
		}
	}

	// Longer than two heartbeats (2s): the subscription gives its pull up
	// and starts its consumer again once the server is back.
	p.CutFor(4 * time.Second)
	back := time.Now()

	select {
	case a := <-attempts:
		t.Logf("x redelivered %v after the outage with Attempt %d", time.Since(back).Round(time.Millisecond), a)
		// nats-server 2.9 may restart a nak'ed message's delivery count
		// when it meets a pull request whose inbox has gone (the client's
		// requests sent while the connection was down): Attempt is exact
		// only where the client claims it.
		if want := 2; a != want && (c.Capabilities().BrokerAttempts || a < 1) {
			t.Errorf("x redelivered with Attempt %d, want %d", a, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("x, nak'ed with a 3s delay before a 4s outage, not redelivered within 10s of the server's return")
	}
	select {
	case <-sub.Done():
		t.Fatalf("subscription ended: %v", sub.Err())
	default:
	}
}
