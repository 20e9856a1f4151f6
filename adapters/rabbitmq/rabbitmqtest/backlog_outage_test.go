package rabbitmqtest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestOldBacklogSurvivesBriefOutage: PublishAsync messages that waited
// longer than unavailable_timeout behind a broker that was slow but
// confirming, and whose batch then waits for the reconnect after a brief
// loss of the connection, are published: the timeout counts from the
// loss, not from when they were queued (which would fail them at once,
// although the broker was never unavailable for that long).
func TestOldBacklogSurvivesBriefOutage(t *testing.T) {
	n := rabbitmqtest.StartNode(t)
	p := fault.NewProxy(t, n.Addr())
	c := rabbitmqtest.Open(t, "amqp://guest:guest@"+p.Addr()+"/?unavailable_timeout=3s&publish_channels=1")
	topic := integration.UniqueName(t, "backlog")
	if err := c.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	// Slow confirms: every batch takes a few hundred milliseconds, and the
	// four lanes of keyless messages take turns on the one channel, so the
	// batches sent after the first second carry messages queued more than
	// unavailable_timeout before. The timeout is 3s rather than 1s so that
	// the reconnect itself (refused dials with backoff, then the AMQP
	// handshake on a loaded machine under -race) always fits in it: the
	// subject is the backlog's age, not the length of the outage.
	p.SetDelay(250 * time.Millisecond)
	const total = 6144
	var mu sync.Mutex
	var failed []error
	done := make(chan struct{})
	ended := 0
	queued := make([]time.Time, total) // when each message was given to PublishAsync
	finished := make([]bool, total)
	begin := time.Now()
	for i := range total {
		mu.Lock()
		queued[i] = time.Now()
		mu.Unlock()
		c.PublishAsync(context.Background(), topic, &messaging.Message{Payload: []byte{byte(i)}}, func(_ *messaging.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			finished[i] = true
			if err != nil {
				failed = append(failed, err)
			}
			if ended++; ended == total {
				close(done)
			}
		})
	}
	// PublishAsync blocks while its queue is full, so the loop returns
	// with a full queue behind the slow confirms. When the oldest message
	// still waiting is older than the timeout (with a margin), drop the
	// connection for a moment, twice (without the delay, which would slow
	// the AMQP handshake of the reconnect).
	const timeout, margin = 3 * time.Second, 500 * time.Millisecond
	oldest := func() (time.Time, int) {
		mu.Lock()
		defer mu.Unlock()
		for i, f := range finished {
			if !f {
				return queued[i], total - ended
			}
		}
		return time.Time{}, 0
	}
	if q, _ := oldest(); !q.IsZero() {
		time.Sleep(time.Until(q.Add(timeout + margin))) // the subject: messages older than the timeout
	}
	p.SetDelay(0)
	q, left := oldest()
	if left == 0 || time.Since(q) < timeout {
		t.Fatalf("the backlog drained before the outage (%d messages left, the oldest queued %v ago): nothing to test", left, time.Since(q))
	}
	t.Logf("at the first cut: %d of %d messages waiting, the oldest queued %v ago", left, total, time.Since(q).Round(time.Millisecond))
	for range 2 {
		p.CutFor(200 * time.Millisecond)
		time.Sleep(300 * time.Millisecond) // the subject: a batch taking its turn while the connection is down
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("not every message ended within 2 minutes")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d messages in %v, %d failed", total, time.Since(begin).Round(time.Millisecond), len(failed))
	if len(failed) > 0 {
		t.Errorf("%d of %d messages failed after two 200ms outages (timeout 3s), the first: %v", len(failed), total, failed[0])
	}
	if ended < total {
		t.Errorf("%d of %d messages ended", ended, total)
	}
}
