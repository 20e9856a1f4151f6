package batch_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/batch"
)

// BenchmarkPublish compares publishing one message per call from many
// goroutines straight to the broker ("unbatched", the raw client doing the
// same work) with the same calls through the batching publisher, on each
// real broker registered. msgs/s is the figure to compare.
func BenchmarkPublish(b *testing.B) {
	for _, name := range []string{"redis", "nats", "kafka", "rabbitmq"} {
		hn, ok := integration.LookupHarness(name)
		if !ok {
			continue
		}
		for _, mode := range []string{"unbatched", "batched", "batched-inflight4"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				c := hn.Client(b)
				topic := mwtest.Topic(b, c, "bench")
				// Brokers that route only to existing queues need a group.
				if err := messaging.Provision(context.Background(), c, topic, integration.UniqueName(b, "g")); err != nil {
					b.Fatal(err)
				}
				var p messaging.Publisher = c
				if mode != "unbatched" {
					inFlight := 1
					if mode == "batched-inflight4" {
						inFlight = 4
					}
					bp := mwtest.Must(batch.NewPublisher(c, batch.WithBatchSize(100), batch.WithMaxInFlight(inFlight)))
					defer bp.Close()
					p = bp
				}
				payload := make([]byte, 100)
				ctx := context.Background()
				var failed atomic.Int64
				var firstErr atomic.Value
				b.SetParallelism(32) // 32 x GOMAXPROCS publishing goroutines
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := p.Publish(ctx, topic, &messaging.Message{Payload: payload}); err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d publishes failed, first: %v", n, firstErr.Load())
				}
			})
		}
	}
}
