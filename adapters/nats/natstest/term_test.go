package natstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestTermWithReasonOnCurrentServer: on servers from 2.10.4 on (here the
// in-process nats-server this module builds against; the shared test
// server may be older, where the adapter sends a plain term), a Permanent
// failure terminates the message with the handler's error as its reason:
// the server's termination advisory carries it, the consumer counts the
// message settled, and it is never delivered again.
func TestTermWithReasonOnCurrentServer(t *testing.T) {
	addr := startSecureServer(t, &server.Options{JetStream: true})
	c := natstest.OpenURL(t, "nats://"+addr)
	t.Logf("server %s", c.Conn().ConnectedServerVersion())
	ctx := t.Context()
	topic := integration.UniqueName(t, "term")
	if err := c.Provision(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	stream, consumer := c.StreamName(topic), c.ConsumerName(topic, "g")
	advisories := make(chan *natsgo.Msg, 10)
	adv, err := c.Conn().ChanSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."+stream+"."+consumer, advisories)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = adv.Unsubscribe() })
	if err := c.Conn().FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "bad"}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
		calls.Add(1)
		return messaging.Permanent(errors.New("payload rejected"))
	}, messaging.Group("g"), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case m := <-advisories:
		var a struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
			Reason     string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatalf("advisory %q: %v", m.Data, err)
		}
		if a.StreamSeq != 1 || a.Deliveries != 1 || !strings.Contains(a.Reason, "payload rejected") {
			t.Fatalf("termination advisory %s, want stream_seq 1, deliveries 1 and the handler's error as reason", m.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no termination advisory within 10s (handler called %d times)", calls.Load())
	}
	cons, err := c.JetStream().Consumer(ctx, stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	integration.Eventually(t, 10*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
			return fmt.Errorf("consumer: %d unsettled, ack floor %d, want 0 and 1 (the message terminated)", info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want once", n)
	}
}

// TestBrokerAttemptsByServerVersion: Attempt is claimed the server's
// reliable delivery count (BrokerAttempts) on servers from 2.10 on only: on
// the in-process server this module builds against, and on the shared test
// server as its version says (2.9 rolls a nak'ed message's count back).
func TestBrokerAttemptsByServerVersion(t *testing.T) {
	current := natstest.OpenURL(t, "nats://"+startSecureServer(t, &server.Options{JetStream: true}))
	if !current.Capabilities().BrokerAttempts {
		t.Errorf("server %s: BrokerAttempts not claimed", current.Conn().ConnectedServerVersion())
	}
	shared := natstest.Open(t)
	v := shared.Conn().ConnectedServerVersion()
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("server version %q: %v", v, err)
	}
	want := major > 2 || major == 2 && minor >= 10
	if got := shared.Capabilities().BrokerAttempts; got != want {
		t.Errorf("server %s: BrokerAttempts %v, want %v", v, got, want)
	}
}
