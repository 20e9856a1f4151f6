package fault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// PublishWhileUnreachable is the unreachable-broker scenario every adapter
// runs: c reaches its broker only through p and was configured with an
// unavailable timeout of 1s; topic and group exist. While a publisher and
// the group run, p cuts the network: a Publish without a deadline must fail
// with messaging.ErrUnavailable after about the timeout (within 4s); once p
// restores, publishing must resume within 1s and the group too; nothing
// confirmed may be lost. The stalls are logged.
func PublishWhileUnreachable(t *testing.T, c messaging.Client, p *Proxy, topic, group string) {
	t.Helper()
	w := StartWorkload(t, c, topic, WorkloadOptions{Publishers: 1, CallTimeout: 2 * time.Second})
	g := w.Group(group)
	sub, err := c.Subscribe(t.Context(), topic, g.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	w.WaitConfirmed(200, 30*time.Second)

	p.Cut()
	begin := time.Now()
	err = c.Publish(context.Background(), topic, &messaging.Message{ID: "during-cut"})
	took := time.Since(begin)
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Fatalf("Publish with the broker unreachable: %v, want messaging.ErrUnavailable", err)
	}
	t.Logf("Publish failed after %v: %v", took.Round(time.Millisecond), err)
	if took < 900*time.Millisecond || took > 4*time.Second {
		t.Errorf("Publish failed after %v with an unavailable timeout of 1s", took)
	}
	p.Restore()
	r := w.Recovered(time.Now(), 30*time.Second)
	t.Logf("after the cut: resumed after %v", r)
	w.Finish(60 * time.Second)
	if r.Publish > time.Second {
		t.Errorf("publishing resumed %v after the broker was reachable again, want within 1s", r.Publish)
	}
}
