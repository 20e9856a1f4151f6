package kafkatest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging/integration"
)

// adapterPublishAsync publishes n messages with PublishAsync from the
// calling goroutine, then flushes.
func (e *benchEnv) adapterPublishAsync(b *testing.B, n int) {
	if err := integration.PublishAsyncN(context.Background(), e.client, e.topic, n, payload); err != nil {
		b.Error(err)
	}
}

// rawAsyncWriter returns a function writing n plain records with raw
// kafka-go's asynchronous Writer (Async, batches of up to 1000 records)
// and waiting for their Completion callbacks.
func (e *benchEnv) rawAsyncWriter(b *testing.B) (write func(n int)) {
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
	return func(n int) {
		target.Add(int64(n))
		for range n {
			if err := w.WriteMessages(ctx, kafkago.Message{Topic: e.topic, Value: payload}); err != nil {
				b.Error(err)
				return
			}
		}
		for acked.Load() < target.Load() {
			select {
			case <-reached:
			case <-time.After(time.Minute):
				b.Errorf("raw: %d of %d acknowledged after 1 minute", acked.Load(), target.Load())
				return
			}
		}
		if err := failed.Load(); err != nil {
			b.Error(*err)
		}
	}
}

// BenchmarkPublishAsync: one goroutine publishes b.N 1 KiB messages
// asynchronously and waits for all acknowledgements: the adapter's
// PublishAsync then Flush, beside raw kafka-go's asynchronous Writer (Async,
// batches of up to 1000 records, 1ms linger, acks from all replicas, plain
// records: no ID header) counting its Completion callbacks.
func BenchmarkPublishAsync(b *testing.B) {
	timeAdapterVariants(b, func(e *benchEnv, b *testing.B) { e.adapterPublishAsync(b, b.N) })
	b.Run("raw", func(b *testing.B) {
		e := newBenchEnv(b)
		write := e.rawAsyncWriter(b)
		write(benchBatch) // connections and metadata warm
		b.ResetTimer()
		start := time.Now()
		write(b.N)
		report(b, b.N, time.Since(start))
	})
}
