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
// full. The server answers again 0.35 unavailable timeouts later (the
// answers free nats.go's window) and m3 is published. It used to fail
// 200ms into its wait with nats.go's "stalled with too many outstanding
// async published messages".
func TestSilentServerRoomWithinDeadline(t *testing.T) {
	const unavailable = 2 * time.Second
	srv, c, topic := silentServerWith(t, unavailable, natsadapter.WithMaxInFlight(2))
	var r asyncRecorder
	for i := range 3 { // m2 returns once m0 and m1 failed
		r.publish(context.Background(), c, topic, &messaging.Message{ID: fmt.Sprintf("m%d", i), Payload: []byte("x")})
	}
	r.mu.Lock()
	m2 := r.res[2].returned
	r.mu.Unlock()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		r.publish(context.Background(), c, topic, &messaging.Message{ID: "m3", Payload: []byte("x")})
	}()
	time.Sleep(time.Until(m2.Add(unavailable * 35 / 100))) // the timing is the subject
	resumed := time.Now()
	srv.Continue()
	<-returned
	flushSilent(t, c)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, res := range r.res {
		if len(res.errs) != 1 {
			t.Fatalf("m%d: results %v, want one", i, res.errs)
		}
		t.Logf("m%d: %v %v after the call, %v after the server resumed", i, res.errs[0], res.at[0].Sub(res.called).Round(time.Millisecond), res.at[0].Sub(resumed).Round(time.Millisecond))
	}
	for i, res := range r.res[:2] {
		if !errors.Is(res.errs[0], messaging.ErrUnavailable) {
			t.Errorf("m%d: %v, want an error wrapping messaging.ErrUnavailable", i, res.errs[0])
		}
	}
	if err := r.res[3].errs[0]; err != nil {
		t.Errorf("m3: %v, want it published", err)
	}
}
