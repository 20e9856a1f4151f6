package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestPublishAsyncWhileServerDown: with the server gone, messages given to
// PublishAsync each fail once with messaging.ErrUnavailable, within a few
// seconds in all (the 1s unavailable_timeout applies to the outage, not to
// each message in turn); after the server is back, PublishAsync works again
// on the same client. In both modes.
func TestPublishAsyncWhileServerDown(t *testing.T) {
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := natstest.StartServer(t)
			c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms&unavailable_timeout=1s", natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "down")
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			srv.Kill()
			fault.PublishAsyncWhileUnreachable(t, c, topic)
			srv.Start()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			result := make(chan error, 1)
			c.PublishAsync(ctx, topic, &messaging.Message{ID: "after"}, func(_ *messaging.Message, err error) { result <- err })
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-result; err != nil {
				t.Fatalf("PublishAsync after the restart: %v", err)
			}
		})
	}
}

// TestCoreLooseMessagesWaitForServer: in core mode, messages given to
// PublishAsync without a callback while the server is down wait in
// nats.go's reconnect buffer. Flush does not return before they are sent:
// it ends with ctx's error, or once the unavailable timeout (2s here)
// counted from the first Flush has passed. After the restart nats.go sends
// them, and the next Flush returns once the server has them.
func TestCoreLooseMessagesWaitForServer(t *testing.T) {
	srv := natstest.StartServer(t)
	c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms&unavailable_timeout=2s", natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "loose-down")
	sub := ownSubscription(t, c, topic)
	killAndWait(t, c, srv)
	const n = 100
	for range n {
		c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("x")}, nil)
	}
	begin := time.Now()
	short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := c.Flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with the server down: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 2*time.Second || took > 8*time.Second {
		t.Errorf("Flush with the server down returned after %v, want the 2s unavailable timeout", took)
	}
	srv.Start()
	c.PublishAsync(ctx, topic, &messaging.Message{Payload: []byte("after")}, nil)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if q, _, _ := sub.Pending(); q != n+1 {
		t.Fatalf("%d of %d messages at the subscriber after the restart", q, n+1)
	}
}

// TestCloseWithParkedMessages: messages given to PublishAsync while the
// server is down wait for it (here up to a 10s unavailable_timeout); Close
// does not wait that long: each fails at once with messaging.ErrClosed
// (those given without a callback too, unreported). In both modes.
func TestCloseWithParkedMessages(t *testing.T) {
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := natstest.StartServer(t)
			c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms&unavailable_timeout=10s", natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "parked")
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			killAndWait(t, c, srv) // messages from now on are parked
			const n = 50
			results := make(chan error, n)
			for i := range n {
				c.PublishAsync(t.Context(), topic, &messaging.Message{ID: fmt.Sprintf("parked-%d", i)}, func(_ *messaging.Message, err error) { results <- err })
				c.PublishAsync(t.Context(), topic, &messaging.Message{ID: fmt.Sprintf("loose-%d", i)}, nil)
			}
			begin := time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(begin); took > 3*time.Second {
				t.Errorf("Close took %v with messages waiting for the connection", took)
			}
			for i := range n {
				select {
				case err := <-results:
					if !errors.Is(err, messaging.ErrClosed) {
						t.Fatalf("result %d: %v, want an error wrapping ErrClosed", i, err)
					}
				default:
					t.Fatalf("%d of %d results when Close returned", i, n)
				}
			}
		})
	}
}

// TestParkedMessageHonoursContext: a message given to PublishAsync while
// the server is down waits for the connection; when its context ends
// meanwhile it fails with the context's error once the connection is back,
// and is not sent, while a message parked with it whose context lives is
// stored.
func TestParkedMessageHonoursContext(t *testing.T) {
	srv := natstest.StartServer(t)
	c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms&unavailable_timeout=20s")
	topic := integration.UniqueName(t, "parked-ctx")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	killAndWait(t, c, srv) // messages from now on are parked
	ctx, cancel := context.WithCancel(t.Context())
	cancelled, kept := make(chan error, 1), make(chan error, 1)
	c.PublishAsync(ctx, topic, &messaging.Message{ID: "cancelled"}, func(_ *messaging.Message, err error) { cancelled <- err })
	c.PublishAsync(t.Context(), topic, &messaging.Message{ID: "kept"}, func(_ *messaging.Message, err error) { kept <- err })
	cancel()
	srv.Start()
	for _, r := range []struct {
		id   string
		ch   chan error
		want error
	}{{"cancelled", cancelled, context.Canceled}, {"kept", kept, nil}} {
		select {
		case err := <-r.ch:
			if !errors.Is(err, r.want) {
				t.Fatalf("message %s: %v, want %v", r.id, err, r.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no result for message %s within 30s of the restart", r.id)
		}
	}
	s, err := c.JetStream().Stream(t.Context(), c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want 2 (before and kept; not the cancelled one)", n)
	}
}
