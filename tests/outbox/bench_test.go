package outbox_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/outbox"
)

var benchPayload = make([]byte, 1024)

// forEachBenchBroker runs f for each real broker with a fresh topic.
func forEachBenchBroker(b *testing.B, f func(b *testing.B, c messaging.Client, topic string)) {
	for _, be := range realBrokers {
		b.Run(be.name, func(b *testing.B) {
			c := be.open(b)
			topic := integration.UniqueName(b, "obench")
			b.Cleanup(func() { deleteTopic(b, c, topic) })
			f(b, c, topic)
		})
	}
}

// BenchmarkRelayThroughput: b.N committed rows (1 KiB, 100 keys) forwarded
// by one relay until the broker accepted them all; msgs/s beside
// BenchmarkDirectPublish doing the same publishing without the outbox.
func BenchmarkRelayThroughput(b *testing.B) {
	for _, batch := range []int{100, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			forEachBenchBroker(b, func(b *testing.B, c messaging.Client, topic string) {
				e := newEnv(b)
				for start := 0; start < b.N; start += 500 {
					msgs := make([]*messaging.Message, min(500, b.N-start))
					for i := range msgs {
						msgs[i] = &messaging.Message{Key: fmt.Sprint((start + i) % 100), Payload: benchPayload}
					}
					e.enqueue(b, topic, true, msgs...)
				}
				var forwarded atomic.Int64
				done := make(chan struct{})
				b.ResetTimer()
				start := time.Now()
				e.startRelay(b, c, outbox.WithBatchSize(batch), outbox.WithOnBatch(func(bi outbox.BatchInfo) {
					if forwarded.Add(int64(bi.Forwarded)) == int64(b.N) {
						close(done)
					}
				}))
				<-done
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			})
		})
	}
}

// BenchmarkDirectPublish is the baseline: the same messages published
// straight to the broker in calls of 100 and 500.
func BenchmarkDirectPublish(b *testing.B) {
	for _, batch := range []int{100, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			forEachBenchBroker(b, func(b *testing.B, c messaging.Client, topic string) {
				ctx := context.Background()
				b.ResetTimer()
				start := time.Now()
				for sent := 0; sent < b.N; sent += batch {
					msgs := make([]*messaging.Message, min(batch, b.N-sent))
					for i := range msgs {
						msgs[i] = &messaging.Message{Key: fmt.Sprint((sent + i) % 100), Payload: benchPayload}
					}
					if err := c.Publish(ctx, topic, msgs...); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			})
		})
	}
}

// BenchmarkEnqueue: transactions of one message each, the usual shape of
// a service writing its state and one event.
func BenchmarkEnqueue(b *testing.B) {
	e := newEnv(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.enqueue(b, "bench", true, &messaging.Message{Key: fmt.Sprint(i % 100), Payload: benchPayload})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkCommitToDelivery: one message per transaction, committed at a
// random moment (0-100ms after the previous delivery), measured from the
// commit's return to the consumer's handler; p50 and p99 with NOTIFY and
// with polling only (every 100ms). Run with -benchtime=200x or so.
func BenchmarkCommitToDelivery(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []outbox.RelayOption
	}{
		{"notify", []outbox.RelayOption{outbox.WithPollInterval(time.Second)}},
		{"polling-100ms", []outbox.RelayOption{outbox.WithPolling(), outbox.WithPollInterval(100 * time.Millisecond)}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			forEachBenchBroker(b, func(b *testing.B, c messaging.Client, topic string) {
				e := newEnv(b)
				got := make(chan time.Time, 1)
				subscribe(b, c, topic, func(context.Context, *messaging.Message) error {
					got <- time.Now()
					return nil
				})
				e.startRelay(b, c, mode.opts...)
				ctx := context.Background()
				lat := make([]time.Duration, 0, b.N)
				rng := rand.New(rand.NewPCG(1, 2))
				b.ResetTimer()
				for range b.N {
					// Commits arrive at random times (time is the subject).
					time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
					tx, err := e.db.BeginTx(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					if err := e.ob.Enqueue(ctx, tx, topic, &messaging.Message{Payload: benchPayload}); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
					committed := time.Now()
					select {
					case at := <-got:
						lat = append(lat, at.Sub(committed))
					case <-time.After(30 * time.Second):
						b.Fatal("no delivery in 30s")
					}
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		})
	}
}

// BenchmarkPlainInsert is Enqueue's baseline: the same transactions
// inserting the same payload into a table without the outbox's columns,
// index and trigger.
func BenchmarkPlainInsert(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.db.Exec("CREATE TABLE " + e.schema + ".plain (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k text, payload bytea)"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+e.schema+".plain (k, payload) VALUES ($1, $2)", fmt.Sprint(i%100), benchPayload); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}
