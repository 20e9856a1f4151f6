package redistest_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// Benchmarks: each adapter benchmark sits beside raw go-redis doing the
// same work, so the overhead reads as a ratio of the msgs/s metrics. b.N
// counts messages. The consume and end-to-end raw baselines are plain
// (payload-only entries, as a go-redis user writes them); BenchmarkPublish's
// raw side writes the adapter's fields (id, time, payload) and
// BenchmarkPublishPlain is its plain form; BenchmarkPublishConcurrent has
// both (raw, raw-ids).
//
//	go test -run '^$' -bench . -benchtime 20000x ./adapters/redis/redistest/

const (
	benchPayload = 1024
	benchBatch   = 100
)

// go-redis's global logger writes into the benchmark result lines (a
// pool.go line when a connection closes), which benchstat then drops, so
// the benchmarks silence it; tests keep it.
var silenceGoRedis sync.Once

func benchSetup(b *testing.B, opts ...redisadapter.Option) (*redisadapter.Client, goredis.UniversalClient, string) {
	b.Helper()
	silenceGoRedis.Do(logging.Disable)
	c := redistest.Open(b, opts...)
	topic := integration.UniqueName(b, "bench")
	b.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	return c, c.Redis(), topic
}

func benchMessages(n int, payload []byte) []*messaging.Message {
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{Payload: payload}
	}
	return msgs
}

// rawPublish pipelines n XADDs of the same shape as the adapter's entries.
func rawPublish(ctx context.Context, rc goredis.UniversalClient, key string, n int, payload []byte) error {
	pipe := rc.Pipeline()
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	for range n {
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"id", uuid.NewString(), "time", now, "payload", payload}})
	}
	_, err := pipe.Exec(ctx)
	return err
}

func report(b *testing.B, n int, d time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "msgs/s")
}

// callerIDs is the adapter variant with ids=caller: payload-only entries,
// as the plain raw baseline writes them.
var callerIDs = []redisadapter.Option{redisadapter.WithCallerIDs()}

func BenchmarkPublish(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, v := range []struct {
		name string
		opts []redisadapter.Option
	}{{"adapter", nil}, {"adapter-caller-ids", callerIDs}} {
		b.Run(v.name, func(b *testing.B) {
			c, _, topic := benchSetup(b, v.opts...)
			ctx := b.Context()
			start := time.Now()
			b.ResetTimer()
			for sent := 0; sent < b.N; sent += benchBatch {
				if err := c.Publish(ctx, topic, benchMessages(min(benchBatch, b.N-sent), payload)...); err != nil {
					b.Fatal(err)
				}
			}
			report(b, b.N, time.Since(start))
		})
	}
	b.Run("raw", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		ctx := b.Context()
		start := time.Now()
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += benchBatch {
			if err := rawPublish(ctx, rc, c.StreamKey(topic), min(benchBatch, b.N-sent), payload); err != nil {
				b.Fatal(err)
			}
		}
		report(b, b.N, time.Since(start))
	})
}

// fill puts n entries on topic's stream (not timed) and creates group at
// its beginning: the adapter's fields (id, time, payload; what Publish
// writes) when fields is true, else only the payload (what a plain go-redis
// producer writes).
func fill(b *testing.B, c *redisadapter.Client, rc goredis.UniversalClient, topic, group string, n int, fields bool) {
	b.Helper()
	ctx := b.Context()
	if err := c.Provision(ctx, topic, group); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, benchPayload)
	publish := rawPublishPlain
	if fields {
		publish = rawPublish
	}
	for sent := 0; sent < n; sent += 1000 {
		if err := publish(ctx, rc, c.StreamKey(topic), min(1000, n-sent), payload); err != nil {
			b.Fatal(err)
		}
	}
}

// rawConsume reads n entries with XREADGROUP COUNT 100 and acknowledges
// each batch with one XACK.
func rawConsume(ctx context.Context, b *testing.B, rc goredis.UniversalClient, key, group string, n int, handle func(map[string]any)) {
	got := 0
	for got < n {
		res, err := rc.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "raw", Streams: []string{key, ">"}, Count: benchBatch, Block: time.Second}).Result()
		if err == goredis.Nil {
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]string, 0, benchBatch)
		for _, x := range res[0].Messages {
			handle(x.Values)
			ids = append(ids, x.ID)
		}
		if err := rc.XAck(ctx, key, group, ids...).Err(); err != nil {
			b.Fatal(err)
		}
		got += len(ids)
	}
}

// adapterConsume subscribes and waits until n messages were handled, and
// reports the rate since start (closing the subscription is not timed).
func adapterConsume(b *testing.B, c *redisadapter.Client, topic, group string, n int, start time.Time, batches bool) {
	cpu := integration.ReadCPU()
	var handled atomic.Int64
	done := make(chan struct{})
	count := func(k int) {
		if handled.Add(int64(k)) == int64(n) {
			close(done)
		}
	}
	var (
		sub messaging.Subscription
		err error
	)
	if batches {
		sub, err = c.SubscribeBatch(b.Context(), topic, func(_ context.Context, msgs []*messaging.Message) []error {
			count(len(msgs))
			return nil
		}, messaging.Group(group))
	} else {
		sub, err = c.Subscribe(b.Context(), topic, func(context.Context, *messaging.Message) error {
			count(1)
			return nil
		}, messaging.Group(group))
	}
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	report(b, n, time.Since(start))
	integration.ReportCPU(b, n, cpu)
	_ = sub.Close()
}

func BenchmarkConsume(b *testing.B) { benchmarkConsume(b, false) }

// BenchmarkConsumeBatch is BenchmarkConsume with SubscribeBatch (default
// BatchSize 100, as the raw side's COUNT 100).
func BenchmarkConsumeBatch(b *testing.B) { benchmarkConsume(b, true) }

// benchmarkConsume: the adapter consumes entries with its own fields
// ("adapter") and payload-only entries ("adapter-plain", what a plain
// producer or ids=caller writes); the plain raw baseline ("raw") reads
// payload-only entries with XREADGROUP COUNT 100 and one XACK per batch,
// and "raw-fields" does the same on entries with the adapter's fields.
func benchmarkConsume(b *testing.B, batches bool) {
	for _, fields := range []bool{true, false} {
		name := "adapter"
		if !fields {
			name = "adapter-plain"
		}
		b.Run(name, func(b *testing.B) {
			c, rc, topic := benchSetup(b)
			group := integration.UniqueName(b, "g")
			fill(b, c, rc, topic, group, b.N, fields)
			start := time.Now()
			b.ResetTimer()
			adapterConsume(b, c, topic, group, b.N, start, batches)
		})
	}
	for _, fields := range []bool{false, true} {
		name := "raw"
		if fields {
			name = "raw-fields"
		}
		b.Run(name, func(b *testing.B) {
			c, rc, topic := benchSetup(b)
			group := integration.UniqueName(b, "g")
			fill(b, c, rc, topic, group, b.N, fields)
			start, cpu := time.Now(), integration.ReadCPU()
			b.ResetTimer()
			rawConsume(b.Context(), b, rc, c.StreamKey(topic), group, b.N, func(map[string]any) {})
			report(b, b.N, time.Since(start))
			integration.ReportCPU(b, b.N, cpu)
		})
	}
}

func BenchmarkEndToEnd(b *testing.B) {
	benchmarkEndToEnd(b, benchBatch, func(ctx context.Context, c *redisadapter.Client, topic string, n int, payload []byte) error {
		for sent := 0; sent < n; sent += benchBatch {
			if err := c.Publish(ctx, topic, benchMessages(min(benchBatch, n-sent), payload)...); err != nil {
				return err
			}
		}
		return nil
	})
}

// benchmarkEndToEnd times publishing b.N messages (the adapter's with
// publish, the raw side's in plain pipelines of rawChunk XADDs) from one
// goroutine until a group member has consumed them all.
func benchmarkEndToEnd(b *testing.B, rawChunk int, publish func(ctx context.Context, c *redisadapter.Client, topic string, n int, payload []byte) error) {
	payload := make([]byte, benchPayload)
	for _, v := range []struct {
		name string
		opts []redisadapter.Option
	}{{"adapter", nil}, {"adapter-caller-ids", callerIDs}} {
		b.Run(v.name, func(b *testing.B) {
			c, _, topic := benchSetup(b, v.opts...)
			group := integration.UniqueName(b, "g")
			if err := c.Provision(b.Context(), topic, group); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			b.ResetTimer()
			published := make(chan struct{})
			go func() {
				defer close(published)
				if err := publish(b.Context(), c, topic, b.N, payload); err != nil {
					b.Error(err)
				}
			}()
			adapterConsume(b, c, topic, group, b.N, start, false)
			<-published // the last Publish may return after its messages were consumed
		})
	}
	b.Run("raw", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		group := integration.UniqueName(b, "g")
		if err := c.Provision(b.Context(), topic, group); err != nil {
			b.Fatal(err)
		}
		key := c.StreamKey(topic)
		start, cpu := time.Now(), integration.ReadCPU()
		b.ResetTimer()
		published := make(chan struct{})
		go func() {
			defer close(published)
			for sent := 0; sent < b.N; sent += rawChunk {
				if err := rawPublishPlain(b.Context(), rc, key, min(rawChunk, b.N-sent), payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		rawConsume(b.Context(), b, rc, key, group, b.N, func(map[string]any) {})
		report(b, b.N, time.Since(start))
		integration.ReportCPU(b, b.N, cpu)
		<-published
	})
}

// BenchmarkPublishConcurrent: 16 goroutines publish one message per call,
// as request handlers do. raw is the plain baseline (one payload-only XADD
// per call, as a go-redis user writes it); raw-ids writes the adapter's
// fields. The adapter sends each call directly (default), with
// ids=caller, and with coalescing (WithCoalescing(2): concurrent calls
// share pipelines).
func BenchmarkPublishConcurrent(b *testing.B) {
	const publishers = 16
	payload := make([]byte, benchPayload)
	run := func(b *testing.B, publish func(ctx context.Context) error) {
		var next atomic.Int64
		start, cpu := time.Now(), integration.ReadCPU()
		b.ResetTimer()
		done := make(chan error, publishers)
		for range publishers {
			go func() {
				for next.Add(1) <= int64(b.N) {
					if err := publish(b.Context()); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range publishers {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		report(b, b.N, time.Since(start))
		integration.ReportCPU(b, b.N, cpu)
	}
	for _, v := range []struct {
		name string
		opts []redisadapter.Option
	}{
		{"adapter", nil},
		{"adapter-caller-ids", callerIDs},
		{"adapter-coalesce2", []redisadapter.Option{redisadapter.WithCoalescing(2)}},
	} {
		b.Run(v.name, func(b *testing.B) {
			c, _, topic := benchSetup(b, v.opts...)
			run(b, func(ctx context.Context) error {
				return c.Publish(ctx, topic, &messaging.Message{Payload: payload})
			})
		})
	}
	b.Run("raw", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		key := c.StreamKey(topic)
		run(b, func(ctx context.Context) error {
			return rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"payload", payload}}).Err()
		})
	})
	b.Run("raw-ids", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		key := c.StreamKey(topic)
		run(b, func(ctx context.Context) error {
			return rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"id", uuid.NewString(), "time", strconv.FormatInt(time.Now().UnixNano(), 10), "payload", payload}}).Err()
		})
	})
}

// BenchmarkPublishPaired alternates adapter and raw batches of 100 in one
// loop and times each side separately, so that load from other processes
// on the host falls on both alike; it reports both rates and their ratio.
func BenchmarkPublishPaired(b *testing.B) {
	payload := make([]byte, benchPayload)
	c, rc, topic := benchSetup(b)
	rawTopic := integration.UniqueName(b, "bench-raw")
	b.Cleanup(func() { _ = c.DeleteTopic(context.Background(), rawTopic) })
	ctx := b.Context()
	key := c.StreamKey(rawTopic)
	var adapterTime, rawTime time.Duration
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += benchBatch {
		n := min(benchBatch, b.N-sent)
		msgs := benchMessages(n, payload)
		t0 := time.Now()
		if err := c.Publish(ctx, topic, msgs...); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := rawPublish(ctx, rc, key, n, payload); err != nil {
			b.Fatal(err)
		}
		adapterTime += t1.Sub(t0)
		rawTime += time.Since(t1)
	}
	b.ReportMetric(float64(b.N)/adapterTime.Seconds(), "adapter-msgs/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(rawTime.Seconds()/adapterTime.Seconds(), "ratio")
}

// BenchmarkConsumePaired consumes two pre-filled streams at the same time,
// one with the adapter and one with raw XREADGROUP COUNT 100 + XACK (of
// payload-only entries), so both run under the same load; it reports both
// rates and their ratio.
func BenchmarkConsumePaired(b *testing.B) {
	c, rc, topic := benchSetup(b)
	rawTopic := integration.UniqueName(b, "bench-raw")
	b.Cleanup(func() { _ = c.DeleteTopic(context.Background(), rawTopic) })
	group := integration.UniqueName(b, "g")
	fill(b, c, rc, topic, group, b.N, true)
	fill(b, c, rc, rawTopic, group, b.N, false)
	var handled atomic.Int64
	done := make(chan time.Time, 1)
	b.ResetTimer()
	start := time.Now()
	sub, err := c.Subscribe(b.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		if handled.Add(1) == int64(b.N) {
			done <- time.Now()
		}
		return nil
	}, messaging.Group(group))
	if err != nil {
		b.Fatal(err)
	}
	rawConsume(b.Context(), b, rc, c.StreamKey(rawTopic), group, b.N, func(map[string]any) {})
	rawTime := time.Since(start)
	adapterTime := (<-done).Sub(start)
	b.StopTimer()
	_ = sub.Close()
	b.ReportMetric(float64(b.N)/adapterTime.Seconds(), "adapter-msgs/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(rawTime.Seconds()/adapterTime.Seconds(), "ratio")
}

// BenchmarkPacedLatency: 1 KiB messages published one per call at 1,000
// msg/s to a group, reporting the delivery latency's p50, p99 and max
// (integration.PacedLatency): the adapter (Publish, Subscribe with a Group,
// default settings) beside the plain raw client, one XADD of a
// payload-only entry per message and an XREADGROUP BLOCK (COUNT
// benchBatch) loop acking each read with XACK.
//
//	go test -run '^$' -bench PacedLatency -benchtime 3000x ./adapters/redis/redistest/
func BenchmarkPacedLatency(b *testing.B) {
	const rate = 1000
	b.Run("adapter", func(b *testing.B) {
		c, _, topic := benchSetup(b)
		integration.PacedLatencyClient(b, rate, c, topic, messaging.Group(integration.UniqueName(b, "g")))
	})
	b.Run("raw", func(b *testing.B) {
		c, rc, topic := benchSetup(b)
		group := integration.UniqueName(b, "g")
		if err := c.Provision(b.Context(), topic, group); err != nil {
			b.Fatal(err)
		}
		key := c.StreamKey(topic)
		integration.PacedLatency(b, rate, func(ctx context.Context, p []byte) error {
			return rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"payload", p}}).Err()
		}, func(deliver func([]byte)) func() {
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ctx.Err() == nil {
					res, err := rc.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "raw", Streams: []string{key, ">"}, Count: benchBatch, Block: time.Second}).Result()
					if err != nil {
						if err != goredis.Nil && ctx.Err() == nil {
							b.Error(err)
							return
						}
						continue
					}
					ids := make([]string, 0, len(res[0].Messages))
					for _, x := range res[0].Messages {
						p, _ := x.Values["payload"].(string)
						deliver([]byte(p))
						ids = append(ids, x.ID)
					}
					if err := rc.XAck(ctx, key, group, ids...).Err(); err != nil && ctx.Err() == nil {
						b.Error(err)
						return
					}
				}
			}()
			return func() { cancel(); <-done }
		})
	})
}
