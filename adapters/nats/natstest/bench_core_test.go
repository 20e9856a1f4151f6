package natstest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// The core benchmarks move 1 KiB messages over plain NATS subjects with the
// adapter in core mode and, beside it, with the plain raw client: what a
// user writes with nats.go (Publish of the payload, no ID, no header;
// Flush; a Subscribe callback). The adapter publishes in Publish calls of
// benchBatch from four goroutines; each call flushes, as Publish returns
// once the server has the messages. Core NATS drops what a subscriber
// cannot take (its client's pending limit is 64 MiB), so where a consumer
// runs, publishers keep at most coreWindow messages ahead of it, on both
// sides alike. Beside msgs/s each reports the process's CPU time a message
// from the timer's start to the report (integration.ReportCPU; publisher,
// consumer and the closing of the subscription alike): on this shared
// 2-core machine it moves far less than the rates.
//
//	go test -run '^$' -bench Core -benchtime 100000x ./adapters/nats/natstest/

const coreWindow = 8192

func coreClient(b *testing.B) (*natsadapter.Client, *natsgo.Conn, string) {
	b.Helper()
	c := natstest.Open(b, natsadapter.WithMode(natsadapter.ModeCore))
	nc, err := natsgo.Connect(natstest.Broker.Endpoint(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return c, nc, integration.UniqueName(b, "core-bench")
}

// window holds publishers back while they are coreWindow messages ahead of
// the consumer's count got; without a consumer (got nil) it never waits.
func window(got *atomic.Int64, sent int) {
	for got != nil && int64(sent)-got.Load() > coreWindow {
		time.Sleep(50 * time.Microsecond)
	}
}

// adapterPublishCore publishes n messages in Publish calls of benchBatch
// from four goroutines.
func adapterPublishCore(b *testing.B, c *natsadapter.Client, topic string, n int, got *atomic.Int64) {
	inRuns(b, n, func(_, start, count int) error {
		window(got, start)
		msgs := make([]*messaging.Message, count)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: payload1K}
		}
		return c.Publish(context.Background(), topic, msgs...)
	})
}

// adapterPublishCoreReused is adapterPublishCore with each goroutine
// publishing the same benchBatch Message values in every call.
func adapterPublishCoreReused(b *testing.B, c *natsadapter.Client, topic string, n int) {
	var own [publishers]struct {
		msgs []messaging.Message
		ptrs []*messaging.Message
	}
	for g := range own {
		own[g].msgs = make([]messaging.Message, benchBatch)
		own[g].ptrs = make([]*messaging.Message, benchBatch)
		for i := range own[g].msgs {
			own[g].ptrs[i] = &own[g].msgs[i]
		}
	}
	inRuns(b, n, func(g, _, count int) error {
		msgs := own[g].ptrs[:count]
		for _, m := range msgs {
			m.Payload = payload1K
		}
		return c.Publish(context.Background(), topic, msgs...)
	})
}

// rawPublishCore publishes n plain messages and flushes.
func rawPublishCore(b *testing.B, nc *natsgo.Conn, topic string, n int, got *atomic.Int64) {
	for i := range n {
		if i%benchBatch == 0 {
			window(got, i)
		}
		if err := nc.Publish(topic, payload1K); err != nil {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
}

// adapterConsumeCore subscribes; wait waits until n messages arrived.
func adapterConsumeCore(b *testing.B, c *natsadapter.Client, topic string, n int, got *atomic.Int64) (wait func()) {
	done := make(chan struct{})
	sub, err := c.Subscribe(context.Background(), topic, func(context.Context, *messaging.Message) error {
		if got.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Errorf("consumed %d of %d messages in 2 minutes", got.Load(), n)
		}
		b.StopTimer()
		_ = sub.Close()
	}
}

// rawConsumeCore is adapterConsumeCore with a plain Subscribe callback.
func rawConsumeCore(b *testing.B, nc *natsgo.Conn, topic string, n int, got *atomic.Int64) (wait func()) {
	done := make(chan struct{})
	sub, err := nc.Subscribe(topic, func(*natsgo.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	return func() {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Errorf("consumed %d of %d messages in 2 minutes", got.Load(), n)
		}
		b.StopTimer()
		_ = sub.Unsubscribe()
	}
}

// BenchmarkCorePublish: publishing with nobody subscribed; the time runs
// until the server has every message.
func BenchmarkCorePublish(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic := coreClient(b)
		timedCore(b, func() { adapterPublishCore(b, c, topic, b.N, nil) })
	})
	// The same with callers that reuse their Message values from call to
	// call (Publish keeps none once it returns; in core mode it sets no ID
	// and no Time, which a caller reusing messages must otherwise clear).
	b.Run("adapter-reused-messages", func(b *testing.B) {
		c, _, topic := coreClient(b)
		timedCore(b, func() { adapterPublishCoreReused(b, c, topic, b.N) })
	})
	// One goroutine: PublishAsync of every message, then Flush.
	b.Run("adapter-async", func(b *testing.B) {
		c, _, topic := coreClient(b)
		timedCore(b, func() { adapterPublishAsync(b, c, topic, b.N) })
	})
	// The same without a callback (fire and forget), then Flush.
	b.Run("adapter-async-nocallback", func(b *testing.B) {
		c, _, topic := coreClient(b)
		timedCore(b, func() { publishLooseCore(b, c, topic, b.N, nil) })
	})
	// Without a callback, one Message value for every call (core mode
	// keeps nothing of it once PublishAsync returns).
	b.Run("adapter-async-nocallback-reused", func(b *testing.B) {
		c, _, topic := coreClient(b)
		timedCore(b, func() { publishLooseCoreReused(b, c, topic, b.N, nil) })
	})
	b.Run("raw", func(b *testing.B) {
		_, nc, topic := coreClient(b)
		timedCore(b, func() { rawPublishCore(b, nc, topic, b.N, nil) })
	})
	// The raw client in the shape of the adapter's Publish calls: four
	// goroutines, each publishing benchBatch messages then flushing (what
	// Publish's return promises), to tell the cost of that promise from
	// the adapter's own.
	b.Run("raw-flush-per-call", func(b *testing.B) {
		_, nc, topic := coreClient(b)
		timedCore(b, func() { rawPublishCoreCalls(b, nc, topic, b.N) })
	})
}

// rawPublishCoreCalls publishes n plain messages from four goroutines in
// runs of benchBatch, each run followed by a flush.
func rawPublishCoreCalls(b *testing.B, nc *natsgo.Conn, topic string, n int) {
	inRuns(b, n, func(_, _, count int) error {
		for range count {
			if err := nc.Publish(topic, payload1K); err != nil {
				return err
			}
		}
		return nc.Flush()
	})
}

// BenchmarkCoreConsume: the plain raw client publishes (at most coreWindow
// ahead) to the adapter's subscription, or to a raw one; the time runs
// until the subscriber has every message.
func BenchmarkCoreConsume(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, nc, topic := coreClient(b)
		timeCore(b, c, topic, func(got *atomic.Int64) { rawPublishCore(b, nc, topic, b.N, got) })
	})
	b.Run("raw", rawEndToEndCore)
}

// BenchmarkCoreEndToEnd: the adapter publishes to its own subscription on
// another client, beside the raw client doing the same.
func BenchmarkCoreEndToEnd(b *testing.B) {
	b.Run("adapter", func(b *testing.B) { endToEndCore(b, adapterPublishCore) })
	b.Run("adapter-async", func(b *testing.B) { endToEndCore(b, publishAsyncCore) })
	b.Run("adapter-async-nocallback", func(b *testing.B) { endToEndCore(b, publishLooseCore) })
	b.Run("adapter-async-nocallback-reused", func(b *testing.B) { endToEndCore(b, publishLooseCoreReused) })
	b.Run("raw", rawEndToEndCore)
}

// endToEndCore runs an adapter side of BenchmarkCoreEndToEnd with publish.
func endToEndCore(b *testing.B, publish func(*testing.B, *natsadapter.Client, string, int, *atomic.Int64)) {
	c, _, topic := coreClient(b)
	sc := natstest.Open(b, natsadapter.WithMode(natsadapter.ModeCore))
	timeCore(b, sc, topic, func(got *atomic.Int64) { publish(b, c, topic, b.N, got) })
}

// timeCore subscribes sc to topic, then times publish (b.N messages, kept
// within coreWindow of got) until the subscription has them all.
func timeCore(b *testing.B, sc *natsadapter.Client, topic string, publish func(got *atomic.Int64)) {
	var got atomic.Int64
	wait := adapterConsumeCore(b, sc, topic, b.N, &got)
	timedCore(b, func() {
		publish(&got)
		wait()
	})
}

// timedCore times run, which moves b.N messages, from a reset timer and
// reports msgs/s and the CPU time a message (integration.ReportCPU).
func timedCore(b *testing.B, run func()) {
	b.ResetTimer()
	cpu := integration.ReadCPU()
	run()
	msgsPerSec(b, b.N)
	integration.ReportCPU(b, b.N, cpu)
}

// publishAsyncCore gives n messages to PublishAsync from one goroutine
// (within the window when got is not nil), then flushes; the first failure
// fails the benchmark.
func publishAsyncCore(b *testing.B, c *natsadapter.Client, topic string, n int, got *atomic.Int64) {
	var failed atomic.Pointer[error]
	publishAsyncEach(b, c, topic, n, got, func(_ *messaging.Message, err error) {
		if err != nil {
			e := err // only a failure allocates
			failed.CompareAndSwap(nil, &e)
		}
	})
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// publishLooseCore is publishAsyncCore without a callback (fire and
// forget).
func publishLooseCore(b *testing.B, c *natsadapter.Client, topic string, n int, got *atomic.Int64) {
	publishAsyncEach(b, c, topic, n, got, nil)
}

// publishLooseCoreReused is publishLooseCore giving PublishAsync the same
// Message value every time.
func publishLooseCoreReused(b *testing.B, c *natsadapter.Client, topic string, n int, got *atomic.Int64) {
	ctx := context.Background()
	m := &messaging.Message{Payload: payload1K}
	for i := range n {
		if i%benchBatch == 0 {
			window(got, i)
		}
		c.PublishAsync(ctx, topic, m, nil)
	}
	if err := c.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

func publishAsyncEach(b *testing.B, c *natsadapter.Client, topic string, n int, got *atomic.Int64, done messaging.PublishCallback) {
	ctx := context.Background()
	for i := range n {
		if i%benchBatch == 0 {
			window(got, i)
		}
		c.PublishAsync(ctx, topic, &messaging.Message{Payload: payload1K}, done)
	}
	if err := c.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// rawEndToEndCore: the raw client publishes to a raw subscription on
// another connection, the raw side of both BenchmarkCoreConsume and
// BenchmarkCoreEndToEnd.
func rawEndToEndCore(b *testing.B) {
	_, nc, topic := coreClient(b)
	sc, err := natsgo.Connect(natstest.Broker.Endpoint(b))
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	var got atomic.Int64
	wait := rawConsumeCore(b, sc, topic, b.N, &got)
	timedCore(b, func() {
		rawPublishCore(b, nc, topic, b.N, &got)
		wait()
	})
}
