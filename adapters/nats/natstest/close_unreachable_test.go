package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestCloseWithSubscriptionWhileUnreachable: with the network to a private
// server cut, or the server silent, Close of a client with a live idle
// subscription (a group's, or a group-less one with its ephemeral consumer
// to delete) returns within about unavailable_timeout
// (fault.CloseWhileUnreachable), not after the drain of its pull, which
// waits for a flush the server cannot answer (nats.go's 10s), or the
// deletion of its consumer.
func TestCloseWithSubscriptionWhileUnreachable(t *testing.T) {
	for _, how := range unreachableWays {
		for _, kind := range []struct {
			name string
			opts []messaging.SubscribeOption
		}{{"group", []messaging.SubscribeOption{messaging.Group("g")}}, {"ephemeral", nil}} {
			t.Run(how.name+"/"+kind.name, func(t *testing.T) {
				t.Parallel() // private servers, proxies and clients each; waits mostly
				srv, p, c := openProxied(t, time.Second)
				topic := integration.UniqueName(t, "closeunr")
				if err := c.Provision(t.Context(), topic, "g"); err != nil {
					t.Fatal(err)
				}
				col := integration.NewCollector()
				if _, err := c.Subscribe(t.Context(), topic, col.Handler(), kind.opts...); err != nil {
					t.Fatal(err)
				}
				// Live: its pull is waiting on the server.
				if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "m"}); err != nil {
					t.Fatal(err)
				}
				col.WaitDistinct(t, 1, 10*time.Second)
				// Idle: the server has its acknowledgement, and the client
				// the confirmation (answered before a flush's PONG).
				idle(t, srv, c.StreamName(topic))
				if err := c.Conn().Flush(); err != nil {
					t.Fatal(err)
				}
				if how.name == "cut" {
					cutAndWait(t, c, p)
				} else {
					how.of(p)()
				}
				fault.CloseWhileUnreachable(t, c)
			})
		}
	}
}

// idle waits until no consumer of stream has a message delivered and not
// acknowledged, asking srv directly (not through the proxy).
func idle(t *testing.T, srv *natstest.Server, stream string) {
	t.Helper()
	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	integration.Eventually(t, 10*time.Second, func() error {
		pending, err := ackPending(t.Context(), js, stream)
		if err == nil && pending == 0 {
			return nil
		}
		return fmt.Errorf("stream %s: %d messages still unacknowledged (%v)", stream, pending, err)
	})
}

// ackPending returns how many messages the consumers of stream have
// delivered and not had acknowledged.
func ackPending(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	n := 0
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		n += ci.NumAckPending
	}
	return n, l.Err()
}
