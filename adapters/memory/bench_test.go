package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration"
)

var payload1K = make([]byte, 1024)

func msgsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPublish: one message per Publish call, from parallel goroutines.
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			c := mustNew(b, memory.WithMaxLen(100_000))
			defer c.Close()
			p := make([]byte, size)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Publish(ctx, "bench", &messaging.Message{Payload: p}); err != nil {
						b.Fatal(err)
					}
				}
			})
			msgsPerSec(b)
		})
	}
}

// BenchmarkPublishBatch100: 100 messages per Publish call; the metric counts
// messages.
func BenchmarkPublishBatch100(b *testing.B) {
	c := mustNew(b, memory.WithMaxLen(100_000))
	defer c.Close()
	ctx := context.Background()
	batch := make([]*messaging.Message, 100)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = &messaging.Message{Payload: payload1K}
		}
		if err := c.Publish(ctx, "bench", batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkConsume: b.N messages are published first (not timed), then a
// group consumes them all.
func BenchmarkConsume(b *testing.B) {
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			c := mustNew(b)
			defer c.Close()
			ctx := context.Background()
			batch := make([]*messaging.Message, 0, 1000)
			for i := 0; i < b.N; i++ {
				batch = append(batch, &messaging.Message{ID: "x", Payload: payload1K})
				if len(batch) == cap(batch) || i == b.N-1 {
					if err := c.Publish(ctx, "bench", batch...); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			var n atomic.Int64
			done := make(chan struct{})
			b.ReportAllocs()
			b.ResetTimer()
			sub, err := c.Subscribe(ctx, "bench", func(context.Context, *messaging.Message) error {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			}, messaging.Group("g"), messaging.Concurrency(conc), messaging.Prefetch(256))
			if err != nil {
				b.Fatal(err)
			}
			<-done
			b.StopTimer()
			sub.Close()
			msgsPerSec(b)
		})
	}
}

// BenchmarkEndToEnd: publish and consume at the same time; the clock stops
// when the last message has been handled.
// No retention here: a publisher outrunning the group would have unconsumed
// messages trimmed, by design.
func BenchmarkEndToEnd(b *testing.B) {
	c := mustNew(b)
	defer c.Close()
	ctx := context.Background()
	var n atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	sub, err := c.Subscribe(ctx, "bench", func(context.Context, *messaging.Message) error {
		if n.Add(1) == target {
			close(done)
		}
		return nil
	}, messaging.Group("g"), messaging.Prefetch(256))
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Publish(ctx, "bench", &messaging.Message{Payload: payload1K}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	msgsPerSec(b)
}

// BenchmarkPacedLatency: 1 KiB messages published one per Publish call at
// 1,000 msg/s to a group; reports the delivery latency's p50, p99 and max
// (integration.PacedLatency). No raw side: the memory adapter is its own
// broker.
//
//	go test -run '^$' -bench PacedLatency -benchtime 3000x ./adapters/memory/
func BenchmarkPacedLatency(b *testing.B) {
	c := mustNew(b)
	defer c.Close()
	integration.PacedLatencyClient(b, 1000, c, "bench", messaging.Group("g"))
}
