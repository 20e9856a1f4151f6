package natstest_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// The benchmarks move 1 KiB messages through JetStream (file storage, one
// stream per run) with the adapter and, beside it, with raw nats.go doing
// the same work in its best configuration: asynchronous publishing with at
// most 4096 unacknowledged (the adapter's default max in flight), and
// pull consumption through Messages with a 256-message buffer (the
// adapter's default prefetch), acking every message. Each reports msgs/s;
// adapter/raw is the overhead ratio.
//
//	go test -run '^$' -bench . -benchtime 20000x ./adapters/nats/natstest/

var payload1K = make([]byte, 1024)

const (
	benchBatch    = 500  // messages per adapter Publish call
	benchInFlight = 4096 // raw in-flight bound, as the adapter's default
	benchPrefetch = 256  // raw pull buffer, as the adapter's default
)

func msgsPerSec(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// benchClient opens an adapter client and a raw connection to the test
// server, and a topic whose stream is deleted after the benchmark.
func benchClient(b *testing.B, opts ...natsadapter.Option) (*natsadapter.Client, jetstream.JetStream, string) {
	b.Helper()
	c := natstest.Open(b, opts...)
	nc, err := natsgo.Connect(natstest.Broker.Endpoint(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchInFlight))
	if err != nil {
		b.Fatal(err)
	}
	topic := integration.UniqueName(b, "bench")
	if err := c.Provision(context.Background(), topic); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	return c, js, topic
}

// adapterPublish publishes n messages in Publish calls of benchBatch from
// four goroutines (Publish waits for its acks, so concurrent calls keep the
// pipeline full).
func adapterPublish(b *testing.B, c *natsadapter.Client, topic string, n int) {
	inRuns(b, n, func(_, _, count int) error {
		msgs := make([]*messaging.Message, count)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: payload1K}
		}
		return c.Publish(context.Background(), topic, msgs...)
	})
}

// publishers is how many goroutines inRuns publishes from.
const publishers = 4

// inRuns splits n messages into runs of benchBatch, which publishers
// goroutines take in turn, calling run with the goroutine's number (from 0)
// and each run's first index and length; an error fails the benchmark and
// ends its goroutine.
func inRuns(b *testing.B, n int, run func(g, start, count int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Go(func() {
			for {
				start := int(next.Add(benchBatch)) - benchBatch
				if start >= n {
					return
				}
				if err := run(g, start, min(benchBatch, n-start)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// rawPublish publishes n messages asynchronously and waits for all acks.
func rawPublish(b *testing.B, js jetstream.JetStream, topic string, n int) {
	for range n {
		if _, err := js.PublishAsync(topic, payload1K); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("raw publish: acks not complete after 1 minute")
	}
}

// rawPublishIDs is rawPublish with each message carrying a unique
// Nats-Msg-Id, so the stream deduplicates as it does for the adapter.
func rawPublishIDs(b *testing.B, js jetstream.JetStream, topic string, n int) {
	for range n {
		m := &natsgo.Msg{Subject: topic, Data: payload1K, Header: natsgo.Header{natsgo.MsgIdHdr: []string{nuid.Next()}}}
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("raw publish: acks not complete after 1 minute")
	}
}

func BenchmarkPublish(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic := benchClient(b)
		b.ResetTimer()
		adapterPublish(b, c, topic, b.N)
		msgsPerSec(b, b.N)
	})
	b.Run("adapter-one-call", func(b *testing.B) {
		c, _, topic := benchClient(b)
		msgs := make([]*messaging.Message, b.N)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: payload1K}
		}
		b.ResetTimer()
		if err := c.Publish(context.Background(), topic, msgs...); err != nil {
			b.Fatal(err)
		}
		msgsPerSec(b, b.N)
	})
	// ids=caller: no ID, no header (the adapter's plain form).
	b.Run("adapter-caller-ids", func(b *testing.B) {
		c, _, topic := benchClient(b, natsadapter.WithCallerIDs())
		b.ResetTimer()
		adapterPublish(b, c, topic, b.N)
		msgsPerSec(b, b.N)
	})
	b.Run("raw", func(b *testing.B) {
		_, js, topic := benchClient(b)
		b.ResetTimer()
		rawPublish(b, js, topic, b.N)
		msgsPerSec(b, b.N)
	})
	b.Run("raw-ids", func(b *testing.B) {
		_, js, topic := benchClient(b)
		b.ResetTimer()
		rawPublishIDs(b, js, topic, b.N)
		msgsPerSec(b, b.N)
	})
}

// BenchmarkConsume: b.N messages are stored first (not timed), then one
// group member consumes and acks them all. adapter and raw consume plain
// messages (no header, as the plain raw client or ids=caller publishes
// them); the -ids pair consumes messages with a Nats-Msg-Id each, as the
// adapter publishes them by default.
func BenchmarkConsume(b *testing.B) {
	for _, stored := range []struct {
		suffix  string
		publish func(*testing.B, jetstream.JetStream, string, int)
	}{{"", rawPublish}, {"-ids", rawPublishIDs}} {
		b.Run("adapter"+stored.suffix, func(b *testing.B) {
			c, js, topic := benchClient(b)
			stored.publish(b, js, topic, b.N)
			b.ResetTimer()
			adapterConsume(b, c, topic, b.N)
			msgsPerSec(b, b.N)
		})
		b.Run("raw"+stored.suffix, func(b *testing.B) {
			_, js, topic := benchClient(b)
			stored.publish(b, js, topic, b.N)
			b.ResetTimer()
			rawConsume(b, js, topic, b.N)
			msgsPerSec(b, b.N)
		})
	}
}

func adapterConsume(b *testing.B, c *natsadapter.Client, topic string, n int) {
	var got atomic.Int64
	done := make(chan struct{})
	sub, err := c.Subscribe(context.Background(), topic, func(context.Context, *messaging.Message) error {
		if got.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}, messaging.Group("bench"))
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Errorf("consumed %d of %d messages in 2 minutes", got.Load(), n)
	}
	b.StopTimer()
	_ = sub.Close()
}

func rawConsume(b *testing.B, js jetstream.JetStream, topic string, n int) {
	ctx := context.Background()
	cons, err := js.CreateOrUpdateConsumer(ctx, topic, jetstream.ConsumerConfig{
		Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: topic,
	})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(benchPrefetch))
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Ack(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	it.Stop()
}

// adapterEndToEnd runs the adapter sides of an end-to-end benchmark, the
// default and ids=caller: publish sends b.N messages while a group member
// consumes them; the time runs until it has acked them all.
func adapterEndToEnd(b *testing.B, publish func(*testing.B, *natsadapter.Client, string, int)) {
	for _, v := range []struct {
		name string
		opts []natsadapter.Option
	}{{"adapter", nil}, {"adapter-caller-ids", []natsadapter.Option{natsadapter.WithCallerIDs()}}} {
		b.Run(v.name, func(b *testing.B) {
			c, _, topic := benchClient(b, v.opts...)
			b.ResetTimer()
			var wg sync.WaitGroup
			wg.Go(func() { adapterConsume(b, c, topic, b.N) })
			publish(b, c, topic, b.N)
			wg.Wait()
			msgsPerSec(b, b.N)
		})
	}
}

// BenchmarkEndToEnd: publishing and consuming at once; the time runs until
// the consumer has acked all b.N messages.
func BenchmarkEndToEnd(b *testing.B) {
	adapterEndToEnd(b, adapterPublish)
	// raw is the plain client; raw-ids sends a Nats-Msg-Id on every
	// message, as the adapter does: the cost of the ID contract end to end.
	for _, raw := range []struct {
		name    string
		publish func(*testing.B, jetstream.JetStream, string, int)
	}{{"raw", rawPublish}, {"raw-ids", rawPublishIDs}} {
		b.Run(raw.name, func(b *testing.B) {
			_, js, topic := benchClient(b)
			b.ResetTimer()
			var wg sync.WaitGroup
			wg.Go(func() { rawConsume(b, js, topic, b.N) })
			raw.publish(b, js, topic, b.N)
			wg.Wait()
			msgsPerSec(b, b.N)
		})
	}
}

// BenchmarkPacedLatency: 1 KiB messages published one per call at 1,000
// msg/s to a group, reporting the delivery latency's p50, p99 and max
// (integration.PacedLatency). In JetStream mode the adapter (Publish,
// Subscribe with a Group, default settings) sits beside raw nats.go:
// js.Publish of the plain payload (no ID, no header) and Consume on a
// durable pull consumer (benchPrefetch buffer) acking each message;
// raw-ids sends a Nats-Msg-Id with each message, as the adapter's default
// does (the server's duplicate tracking, without the adapter). In core
// mode the adapter sits beside nc.Publish then nc.Flush per message (the
// adapter's Publish flushes too), and raw-noflush is nc.Publish alone; the
// raw subscriber is a queue subscription, as the adapter's with a Group.
//
//	go test -run '^$' -bench PacedLatency -benchtime 3000x ./adapters/nats/natstest/
func BenchmarkPacedLatency(b *testing.B) {
	const rate = 1000
	b.Run("jetstream", func(b *testing.B) {
		b.Run("adapter", func(b *testing.B) {
			c, _, topic := benchClient(b)
			integration.PacedLatencyClient(b, rate, c, topic, messaging.Group("bench"))
		})
		b.Run("adapter-caller-ids", func(b *testing.B) {
			c, _, topic := benchClient(b, natsadapter.WithCallerIDs())
			integration.PacedLatencyClient(b, rate, c, topic, messaging.Group("bench"))
		})
		for _, ids := range []bool{false, true} {
			name := "raw"
			if ids {
				name = "raw-ids"
			}
			b.Run(name, func(b *testing.B) { pacedRawJetStream(b, rate, ids) })
		}
	})
	b.Run("core", func(b *testing.B) {
		b.Run("adapter", func(b *testing.B) {
			c, _, topic := coreClient(b)
			integration.PacedLatencyClient(b, rate, c, topic, messaging.Group("bench"))
		})
		for _, flush := range []bool{true, false} {
			name := "raw"
			if !flush {
				name = "raw-noflush"
			}
			b.Run(name, func(b *testing.B) {
				_, nc, topic := coreClient(b)
				integration.PacedLatency(b, rate, func(_ context.Context, p []byte) error {
					if err := nc.Publish(topic, p); err != nil || !flush {
						return err
					}
					return nc.Flush()
				}, func(deliver func([]byte)) func() {
					sub, err := nc.QueueSubscribe(topic, "bench", func(m *natsgo.Msg) { deliver(m.Data) })
					if err != nil {
						b.Fatal(err)
					}
					if err := nc.Flush(); err != nil {
						b.Fatal(err)
					}
					return func() { _ = sub.Unsubscribe() }
				})
			})
		}
	})
}

// pacedRawJetStream is the raw side of BenchmarkPacedLatency's JetStream
// runs: js.Publish of the plain payload, with ids a Nats-Msg-Id too (a
// NUID, as the server deduplicates the adapter's default messages), and
// Consume on a durable pull consumer (benchPrefetch buffer) acking each
// message.
func pacedRawJetStream(b *testing.B, rate int, ids bool) {
	_, js, topic := benchClient(b)
	integration.PacedLatency(b, rate, func(ctx context.Context, p []byte) error {
		var opts []jetstream.PublishOpt
		if ids {
			opts = append(opts, jetstream.WithMsgID(nuid.Next()))
		}
		_, err := js.Publish(ctx, topic, p, opts...)
		return err
	}, func(deliver func([]byte)) func() {
		cons, err := js.CreateOrUpdateConsumer(b.Context(), topic, jetstream.ConsumerConfig{
			Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: topic,
		})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			deliver(m.Data())
			_ = m.Ack()
		}, jetstream.PullMaxMessages(benchPrefetch))
		if err != nil {
			b.Fatal(err)
		}
		return cc.Stop
	})
}
