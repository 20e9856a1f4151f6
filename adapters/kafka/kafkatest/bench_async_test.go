package kafkatest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
)

// BenchmarkPublishAsync: one goroutine publishes b.N 1 KiB messages
// asynchronously and waits for all acknowledgements: the adapter's
// PublishAsync then Flush, beside raw kafka-go's asynchronous Writer (Async,
// batches of up to 1000 records, 1ms linger, acks from all replicas, plain
// records: no ID header) counting its Completion callbacks.
func BenchmarkPublishAsync(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		e := newBenchEnv(b)
		e.publish(b, benchBatch) // connections and metadata warm
		ctx := context.Background()
		var failed atomic.Pointer[error]
		done := func(_ *messaging.Message, err error) {
			if err != nil {
				e := err // only a failure allocates (&err would, per call)
				failed.CompareAndSwap(nil, &e)
			}
		}
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			e.client.PublishAsync(ctx, e.topic, &messaging.Message{Payload: payload}, done)
		}
		if err := e.client.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		report(b, b.N, time.Since(start))
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
	})
	b.Run("raw", func(b *testing.B) {
		e := newBenchEnv(b)
		w := e.rawWriter(b, 1000)
		var acked, target atomic.Int64
		var failed atomic.Pointer[error]
		reached := make(chan struct{}, 1)
		w.Async = true
		w.Completion = func(msgs []kafkago.Message, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			if acked.Add(int64(len(msgs))) >= target.Load() {
				select {
				case reached <- struct{}{}:
				default:
				}
			}
		}
		ctx := context.Background()
		write := func(n int) {
			target.Add(int64(n))
			for range n {
				if err := w.WriteMessages(ctx, kafkago.Message{Topic: e.topic, Value: payload}); err != nil {
					b.Fatal(err)
				}
			}
			for acked.Load() < target.Load() {
				select {
				case <-reached:
				case <-time.After(time.Minute):
					b.Fatalf("raw: %d of %d acknowledged after 1 minute", acked.Load(), target.Load())
				}
			}
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
		}
		write(benchBatch) // connections and metadata warm
		b.ResetTimer()
		start := time.Now()
		write(b.N)
		report(b, b.N, time.Since(start))
	})
}
