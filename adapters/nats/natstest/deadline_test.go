package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// asyncResult is one message's PublishAsync call and results.
type asyncResult struct {
	called time.Time
	at     []time.Time
	errs   []error
}

// asyncRecorder records the results of PublishAsync messages.
type asyncRecorder struct {
	mu  sync.Mutex
	res []*asyncResult
}

// publish calls PublishAsync with m and records the call and its results.
func (r *asyncRecorder) publish(ctx context.Context, ap messaging.AsyncPublisher, topic string, m *messaging.Message) {
	res := &asyncResult{called: time.Now()}
	r.mu.Lock()
	r.res = append(r.res, res)
	r.mu.Unlock()
	ap.PublishAsync(ctx, topic, m, func(_ *messaging.Message, err error) {
		now := time.Now()
		r.mu.Lock()
		res.at = append(res.at, now)
		res.errs = append(res.errs, err)
		r.mu.Unlock()
	})
}

// cutAndWait cuts p and returns once c's connection knows it is down.
func cutAndWait(t *testing.T, c *natsadapter.Client, p *fault.Proxy) {
	t.Helper()
	reconnecting := c.Conn().StatusChanged(natsgo.RECONNECTING)
	defer c.Conn().RemoveStatusListener(reconnecting)
	p.Cut()
	select {
	case <-reconnecting:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not notice the cut")
	}
}

// TestPublishAsyncUnavailableDeadlinePerMessage: with the server
// unreachable, messages given to PublishAsync one after the other over
// one and a half unavailable timeouts each fail once with
// messaging.ErrUnavailable about unavailable_timeout after their own call:
// neither sooner (a message given while the flusher or the parked messages
// already waited failed with them, 100ms after its call) nor much later.
// Flush returns about unavailable_timeout after the last call. In both
// modes.
func TestPublishAsyncUnavailableDeadlinePerMessage(t *testing.T) {
	const unavailable = time.Second
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := natstest.StartServer(t)
			p := fault.NewProxy(t, srv.Addr())
			c := natstest.OpenURL(t, fmt.Sprintf("nats://%s?reconnect_wait=50ms&unavailable_timeout=%v", p.Addr(), unavailable), natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "deadline")
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			cutAndWait(t, c, p)
			var r asyncRecorder
			const n = 15 // one every 100ms: over 1.5 unavailable timeouts
			tick := time.NewTicker(unavailable / 10)
			defer tick.Stop()
			for i := range n {
				if i > 0 {
					<-tick.C // the calls' spacing is the subject
				}
				r.publish(t.Context(), c, topic, &messaging.Message{ID: fmt.Sprintf("during-%d", i), Payload: []byte("x")})
			}
			last := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(last); took > unavailable+500*time.Millisecond {
				t.Errorf("Flush returned %v after the last call, unavailable_timeout %v", took, unavailable)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			for i, res := range r.res {
				if len(res.errs) != 1 || !errors.Is(res.errs[0], messaging.ErrUnavailable) {
					t.Fatalf("message %d: results %v, want one wrapping messaging.ErrUnavailable", i, res.errs)
				}
				waited := res.at[0].Sub(res.called)
				if waited < unavailable-50*time.Millisecond || waited > unavailable+500*time.Millisecond {
					t.Errorf("message %d failed %v after its call, want about the unavailable timeout %v", i, waited.Round(time.Millisecond), unavailable)
				}
			}
		})
	}
}
