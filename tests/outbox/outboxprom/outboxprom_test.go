package outboxprom_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
	"github.com/msgkit/messaging/outbox/outboxprom"
)

// TestMetrics: the backlog gauge reads the database; the counters and the
// latency histogram follow the relay's batches. The registry is pedantic:
// every metric collected must have been described.
func TestMetrics(t *testing.T) {
	db, ob, _ := migrated(t)
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	m, err := outboxprom.New(reg, ob, db)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, db, ob, "metrics", 3)
	if v := values(t, reg); v["messaging_outbox_backlog"] != 3 || v["messaging_outbox_oldest_age_seconds"] <= 0 || v["messaging_outbox_relays"] != 0 || v["messaging_outbox_status_up"] != 1 {
		t.Fatalf("before the relay: %v", v)
	}

	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := make(chan struct{})
	r, err := ob.NewRelay(db, c, m.OnBatch(), outbox.WithOnBatch(func(outbox.BatchInfo) { close(batch) }))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	select {
	case <-batch:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch in 10s")
	}
	v := values(t, reg)
	if v["messaging_outbox_forwarded_total"] != 3 || v["messaging_outbox_forward_latency_seconds_count"] != 3 ||
		v["messaging_outbox_backlog"] != 0 || v["messaging_outbox_relays"] != 1 || v["messaging_outbox_failed_total"] != 0 {
		t.Fatalf("after a batch: %v", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// values gathers reg into name -> value (histograms as name_count and
// name_sum).
// migrated returns the test database with an outbox migrated in a schema
// of its own, the outbox, and the schema's name.
func migrated(t *testing.T) (*sql.DB, *outbox.Outbox, string) {
	t.Helper()
	db := brokertest.OpenPostgres(t)
	schema := brokertest.PostgresSchema(t, db)
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(schema)))
	if err := ob.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db, ob, schema
}

// enqueue commits n messages to topic through ob in one transaction.
func enqueue(t *testing.T, db *sql.DB, ob *outbox.Outbox, topic string, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{}
	}
	if err := ob.Enqueue(ctx, tx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func values(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"] = float64(m.Histogram.GetSampleCount())
				out[mf.GetName()+"_sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

// TestScrapeTimeout: a scrape whose status query the database does not
// answer (a lock held on the outbox table) gives up after
// WithScrapeTimeout and reports status_up 0, rather than hanging the
// scrape.
func TestScrapeTimeout(t *testing.T) {
	db, ob, schema := migrated(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	if _, err := outboxprom.New(reg, ob, db, outboxprom.WithScrapeTimeout(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	locker, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = locker.Rollback() }()
	if _, err := locker.Exec("LOCK TABLE " + schema + ".messaging_outbox IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	scraped := make(chan error, 1)
	go func() { _, err := reg.Gather(); scraped <- err }()
	select {
	case err := <-scraped:
		t.Logf("scrape returned after %v (%v)", time.Since(start), err)
		if v := values(t, reg); v["messaging_outbox_status_up"] != 0 || v["messaging_outbox_backlog"] != 0 {
			t.Errorf("metrics with the status query timed out: %v; want status_up 0, no backlog", v)
		}
	case <-time.After(10 * time.Second):
		_ = locker.Rollback() // let the scrape return
		<-scraped
		t.Fatal("scrape still waiting for the database after 10s, with a scrape timeout of 100ms")
	}
}

// TestMetricsFollowEveryBatch: the counters are the sums of what the
// relay's batches report, each in its own counter: messages Publish
// refused (failed), then messages accepted after the relay lost its
// partitions' leases (unmarked: sent again); the latency histogram holds
// the batches' latencies in seconds; the oldest age is in seconds.
func TestMetricsFollowEveryBatch(t *testing.T) {
	db, ob, schema := migrated(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := outboxprom.New(reg, ob, db)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, db, ob, "metrics", 2)
	if _, err := db.ExecContext(ctx, `UPDATE `+schema+`.messaging_outbox SET enqueued_at = enqueued_at - interval '90 seconds'`); err != nil {
		t.Fatal(err)
	}
	if v := values(t, reg)["messaging_outbox_oldest_age_seconds"]; v < 90 || v > 150 {
		t.Errorf("oldest age %v s of messages enqueued 90 s ago, want 90 to 150", v)
	}

	// The first Publish fails; the second takes the leases away (as a
	// relay that took over after an expiry would) and accepts.
	var calls atomic.Int32
	pub := messaging.PublishFunc(func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		n := calls.Add(1)
		if n == 1 {
			return errors.New("broker refuses")
		}
		if n == 2 {
			if _, err := db.ExecContext(ctx, `UPDATE `+schema+`.messaging_outbox_leases SET owner = 'thief', expires_at = now() + interval '1 hour'`); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	var sum outbox.BatchInfo
	resent := make(chan struct{})
	sums := outbox.WithOnBatch(func(b outbox.BatchInfo) {
		mu.Lock()
		defer mu.Unlock()
		sum.Forwarded += b.Forwarded
		sum.Failed += b.Failed
		sum.Unmarked += b.Unmarked
		sum.Latencies = append(sum.Latencies, b.Latencies...)
		if b.Unmarked > 0 && sum.Failed > 0 {
			select {
			case <-resent:
			default:
				close(resent)
			}
		}
	})
	r, err := ob.NewRelay(db, pub, m.OnBatch(), sums)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	select {
	case <-resent:
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no failed batch followed by an unmarked one in 20s; batches so far: %+v", sum)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var latency float64
	for _, l := range sum.Latencies {
		latency += l.Seconds()
	}
	if len(sum.Latencies) == 0 {
		t.Fatalf("batches %+v: no latency (the unmarked messages were accepted)", sum)
	}
	v := values(t, reg)
	if v["messaging_outbox_failed_total"] != float64(sum.Failed) || v["messaging_outbox_unmarked_total"] != float64(sum.Unmarked) ||
		v["messaging_outbox_forwarded_total"] != float64(sum.Forwarded) ||
		v["messaging_outbox_forward_latency_seconds_count"] != float64(len(sum.Latencies)) ||
		math.Abs(v["messaging_outbox_forward_latency_seconds_sum"]-latency) > 1e-6 {
		t.Errorf("metrics %v; want the batches' sums: %d failed, %d unmarked, %d forwarded, %d latencies of %v s in all",
			v, sum.Failed, sum.Unmarked, sum.Forwarded, len(sum.Latencies), latency)
	}
}
