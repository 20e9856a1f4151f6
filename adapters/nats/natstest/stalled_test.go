package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
)

// TestSilentServerMoreThanMaxInFlight: on a silent server (see
// silentServer), with WithMaxInFlight(1), three messages in turn. Each
// fails with messaging.ErrUnavailable about the unavailable timeout after
// the one before it ended (when it got its slot of the window), none at
// once: nats.go keeps a message the adapter failed as unavailable among
// its own unacknowledged publishes until publish_timeout (30s), so the
// third found nats.go's window (max_in_flight+1) full of the first two,
// and failed 200ms later with nats.go's "stalled with too many outstanding
// async published messages", not wrapping messaging.ErrUnavailable. Now it
// waits for room within its own deadline. PublishAsync and Publish.
func TestSilentServerMoreThanMaxInFlight(t *testing.T) {
	for _, async := range []bool{true, false} {
		t.Run(map[bool]string{true: "PublishAsync", false: "Publish"}[async], func(t *testing.T) {
			srv, c, topic := silentServerWith(t, silentTimeout, natsadapter.WithMaxInFlight(1))
			const n = 3
			var r asyncRecorder
			for i := range n {
				m := &messaging.Message{ID: fmt.Sprintf("m%d", i), Payload: []byte("x")}
				if async {
					r.publish(context.Background(), c, topic, m)
					continue
				}
				res := &asyncResult{called: time.Now()}
				err := c.Publish(context.Background(), topic, m)
				res.at, res.errs = []time.Time{time.Now()}, []error{err}
				r.res = append(r.res, res)
			}
			flushSilent(t, c)
			r.mu.Lock()
			for i, res := range r.res {
				if len(res.errs) != 1 {
					r.mu.Unlock()
					t.Fatalf("message %d: %d results %v, want one", i, len(res.errs), res.errs)
				}
				// Its slot of the window: at the call, or when the message
				// before it ended.
				began := res.called
				if i > 0 {
					began = r.res[i-1].at[0]
				}
				checkSilentWait(t, fmt.Sprintf("message %d", i), began, res.at[0], res.errs[0])
			}
			r.mu.Unlock()
			srv.Continue()
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after", Payload: []byte("y")}); err != nil {
				t.Fatalf("Publish once the server answers again: %v", err)
			}
		})
	}
}

// TestSilentServerRoomWithinDeadline: on a silent server, with
// WithMaxInFlight(2) (nats.go's window: 3), m0 and m1 fail as unavailable
// and stay in nats.go's window; m2 takes its last slot, and m3 finds it
// full and waits. 0.35 unavailable timeouts later: the server answers
// again (the answers free nats.go's window) and m3 is published; or m3's
// context is cancelled, or Close begins, and m3 fails at once with the
// context's error or messaging.ErrClosed. m3 used to fail 200ms into its
// wait with nats.go's "stalled with too many outstanding async published
// messages".
func TestSilentServerRoomWithinDeadline(t *testing.T) {
	for _, end := range []string{"resume", "cancel", "close"} {
		t.Run(end, func(t *testing.T) {
			const unavailable = 2 * time.Second
			srv, c, topic := silentServerWith(t, unavailable, natsadapter.WithMaxInFlight(2))
			var r asyncRecorder
			for i := range 3 { // m2 returns once m0 and m1 failed
				r.publish(context.Background(), c, topic, &messaging.Message{ID: fmt.Sprintf("m%d", i), Payload: []byte("x")})
			}
			r.mu.Lock()
			m2 := r.res[2].returned
			r.mu.Unlock()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			returned := make(chan struct{})
			go func() {
				defer close(returned)
				r.publish(ctx, c, topic, &messaging.Message{ID: "m3", Payload: []byte("x")})
			}()
			time.Sleep(time.Until(m2.Add(unavailable * 35 / 100))) // the timing is the subject
			ended := time.Now()
			switch end {
			case "resume":
				srv.Continue()
			case "cancel":
				cancel()
			case "close":
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			}
			<-returned
			flushSilent(t, c)
			r.mu.Lock()
			defer r.mu.Unlock()
			for i, res := range r.res {
				if len(res.errs) != 1 {
					t.Fatalf("m%d: results %v, want one", i, res.errs)
				}
				t.Logf("m%d: %v %v after the call, %v after the %s", i, res.errs[0], res.at[0].Sub(res.called).Round(time.Millisecond), res.at[0].Sub(ended).Round(time.Millisecond), end)
			}
			for i, res := range r.res[:2] {
				if !errors.Is(res.errs[0], messaging.ErrUnavailable) {
					t.Errorf("m%d: %v, want an error wrapping messaging.ErrUnavailable", i, res.errs[0])
				}
			}
			m3 := r.res[3]
			switch err := m3.errs[0]; {
			case end == "resume" && err != nil:
				t.Errorf("m3: %v, want it published", err)
			case end == "cancel" && !errors.Is(err, context.Canceled):
				t.Errorf("m3: %v, want an error wrapping context.Canceled", err)
			case end == "close" && !errors.Is(err, messaging.ErrClosed):
				t.Errorf("m3: %v, want an error wrapping messaging.ErrClosed", err)
			}
			if took := m3.at[0].Sub(ended); took < 0 || took > silentSlack {
				t.Errorf("m3 ended %v after the %s, want at once", took.Round(time.Millisecond), end)
			}
		})
	}
}
