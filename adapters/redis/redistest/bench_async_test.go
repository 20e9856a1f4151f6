package redistest_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/integration"
)

// rawPublishPlain pipelines n XADDs of a payload field only: what a user
// writes with go-redis when no ID or time is asked for (the plain raw
// baseline; rawPublish adds the adapter's fields).
func rawPublishPlain(ctx context.Context, rc goredis.UniversalClient, key string, n int, payload []byte) error {
	pipe := rc.Pipeline()
	for range n {
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"payload", payload}})
	}
	_, err := pipe.Exec(ctx)
	return err
}

// BenchmarkPublishPlain: BenchmarkPublish's raw side without the ID and
// time fields, in pipelines of 100 (one Publish call's worth).
func BenchmarkPublishPlain(b *testing.B) {
	payload := make([]byte, benchPayload)
	b.Run("raw-plain", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		ctx := b.Context()
		start := time.Now()
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += benchBatch {
			if err := rawPublishPlain(ctx, rc, c.StreamKey(topic), min(benchBatch, b.N-sent), payload); err != nil {
				b.Fatal(err)
			}
		}
		report(b, b.N, time.Since(start))
	})
}

// BenchmarkPublishAsync: one goroutine publishes b.N 1 KiB messages
// asynchronously and waits for all results: the adapter's PublishAsync
// then Flush, beside raw go-redis pipelining plain XADDs (payload only) in
// pipelines of 1000 from the same goroutine.
func BenchmarkPublishAsync(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, v := range []struct {
		name string
		opts []redisadapter.Option
	}{{"adapter", nil}, {"adapter-caller-ids", callerIDs}} {
		b.Run(v.name, func(b *testing.B) {
			c, _, topic := benchSetup(b, v.opts...)
			start := time.Now()
			b.ResetTimer()
			if err := integration.PublishAsyncN(b.Context(), c, topic, b.N, payload); err != nil {
				b.Fatal(err)
			}
			report(b, b.N, time.Since(start))
		})
	}
	b.Run("raw", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		ctx := b.Context()
		start := time.Now()
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += 1000 {
			if err := rawPublishPlain(ctx, rc, c.StreamKey(topic), min(1000, b.N-sent), payload); err != nil {
				b.Fatal(err)
			}
		}
		report(b, b.N, time.Since(start))
	})
}

// BenchmarkEndToEndAsync: BenchmarkEndToEnd with one goroutine publishing
// asynchronously: the adapter's PublishAsync then Flush beside raw go-redis
// pipelines of 1000 plain XADDs (as BenchmarkPublishAsync's raw side),
// while a group member consumes (XREADGROUP COUNT 100, one XACK per batch
// on the raw side).
func BenchmarkEndToEndAsync(b *testing.B) {
	benchmarkEndToEnd(b, 1000, func(ctx context.Context, c *redisadapter.Client, topic string, n int, payload []byte) error {
		return integration.PublishAsyncN(ctx, c, topic, n, payload)
	})
}
