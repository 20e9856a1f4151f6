package fault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// PublishWhileUnreachable is the unreachable-broker scenario every adapter
// runs: c reaches its broker only through p and was configured with an
// unavailable timeout of 1s; topic and group exist. While a publisher and
// the group run, p cuts the network: a Publish without a deadline must fail
// with messaging.ErrUnavailable after about the timeout (within 4s); once p
// restores, publishing must resume within 1s and the group within
// FailoverBound (as RunOutage wants); nothing confirmed may be lost. The
// stalls are logged.
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
	if ap, ok := c.(messaging.AsyncPublisher); ok {
		PublishAsyncWhileUnreachable(t, ap, topic)
	}
	p.Restore()
	r := w.Recovered(time.Now(), 30*time.Second)
	t.Logf("after the cut: resumed after %v", r)
	w.Finish(60 * time.Second)
	if !r.OK || r.Max() > FailoverBound {
		t.Errorf("did not resume within %v after the broker was reachable again: %v", FailoverBound, r)
	}
	if r.Publish > time.Second {
		t.Errorf("publishing resumed %v after the broker was reachable again, want within 1s", r.Publish)
	}
}

// PublishAsyncWhileUnreachable: with the broker unreachable, messages given to
// PublishAsync each get exactly one result, an error wrapping
// messaging.ErrUnavailable, all within 4s of an unavailable timeout of 1s
// (the timeout applies to the outage, not to each message in turn).
func PublishAsyncWhileUnreachable(t *testing.T, ap messaging.AsyncPublisher, topic string) {
	t.Helper()
	const n = 100
	var mu sync.Mutex
	results := make([][]error, n)
	begin := time.Now()
	for i := range n {
		ap.PublishAsync(context.Background(), topic, &messaging.Message{ID: fmt.Sprintf("async-during-cut-%d", i)}, func(_ *messaging.Message, err error) {
			mu.Lock()
			results[i] = append(results[i], err)
			mu.Unlock()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ap.Flush(ctx); err != nil {
		t.Fatalf("Flush with the broker unreachable: %v", err)
	}
	took := time.Since(begin)
	mu.Lock()
	defer mu.Unlock()
	for i, errs := range results {
		if len(errs) != 1 || !errors.Is(errs[0], messaging.ErrUnavailable) {
			t.Fatalf("PublishAsync message %d with the broker unreachable: results %v, want one wrapping messaging.ErrUnavailable", i, errs)
		}
	}
	t.Logf("PublishAsync: %d messages failed within %v: %v", n, took.Round(time.Millisecond), results[0][0])
	if took > 4*time.Second {
		t.Errorf("PublishAsync: %d messages failed after %v with an unavailable timeout of 1s", n, took)
	}
}
