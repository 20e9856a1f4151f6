package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// The benchmarks publish and consume 1 KiB messages through a topic exchange
// into one quorum queue (a group), with the adapter and with raw amqp091-go
// doing the same work, and report msgs/s so the overhead is a ratio. Run
// them short, e.g.
//
//	go test -run '^$' -bench . -benchtime 20000x ./adapters/rabbitmq/rabbitmqtest/
const (
	benchSize     = 1024
	benchBatch    = 100 // messages per Publish call / per confirm wait
	benchPrefetch = 100
	// benchAckEvery: the raw consumers acknowledge with basic.ack
	// multiple=true every benchAckEvery deliveries, as the adapter batches
	// its acks (a quarter of the prefetch).
	benchAckEvery = benchPrefetch / 4
)

var benchPayload = func() []byte {
	b := make([]byte, benchSize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// benchSetup provisions a topic and a group and returns the adapter client,
// a raw connection, the exchange and the group queue.
func benchSetup(b *testing.B) (c *rabbitmq.Client, raw *amqp.Connection, topic, group, queue string) {
	b.Helper()
	url := rabbitmqtest.Broker.Endpoint(b)
	c = rabbitmqtest.Open(b, url)
	topic, group = integration.UniqueName(b, "bench"), integration.UniqueName(b, "g")
	if err := c.Provision(context.Background(), topic, group); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	raw, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = raw.Close() })
	return c, raw, topic, group, topic + "~" + group
}

func reportRate(b *testing.B, n int, d time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "msgs/s")
}

// The publish helpers may run in their own goroutine: they report failures
// with b.Error and return.

// adapterPublish publishes n messages in Publish calls of benchBatch.
func adapterPublish(b *testing.B, c *rabbitmq.Client, topic string, n int) {
	b.Helper()
	ctx := context.Background()
	for sent := 0; sent < n; {
		k := min(benchBatch, n-sent)
		msgs := make([]*messaging.Message, k)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: benchPayload}
		}
		if err := c.Publish(ctx, topic, msgs...); err != nil {
			b.Error(err)
			return
		}
		sent += k
	}
}

// rawConfirmChannel opens a confirm-mode channel on conn, closed when the
// benchmark ends.
func rawConfirmChannel(b *testing.B, conn *amqp.Connection) *amqp.Channel {
	b.Helper()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ch.Close() })
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	return ch
}

// rawPublishBatches publishes n messages on ch (in confirm mode),
// benchBatch in flight, then waits for all their confirms: the same work as
// one adapter Publish call per batch (which reuses its channels too).
func rawPublishBatches(b *testing.B, ch *amqp.Channel, exchange string, n int) {
	b.Helper()
	dcs := make([]*amqp.DeferredConfirmation, 0, benchBatch)
	for sent := 0; sent < n; {
		k := min(benchBatch, n-sent)
		dcs = dcs[:0]
		for range k {
			dc, err := ch.PublishWithDeferredConfirm(exchange, "", true, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(sent), Timestamp: time.Now(), Body: benchPayload,
			})
			if err != nil {
				b.Error(err)
				return
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			if !dc.Wait() {
				b.Error("nacked")
				return
			}
		}
		sent += k
	}
}

// rawPublishWindow keeps up to window messages in flight continuously (a
// sliding confirm window), the fastest raw configuration found here.
func rawPublishWindow(b *testing.B, conn *amqp.Connection, exchange string, n, window int) {
	b.Helper()
	ch, err := conn.Channel()
	if err != nil {
		b.Error(err)
		return
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.Error(err)
		return
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	inFlight := 0
	for sent := 0; sent < n; sent++ {
		for inFlight >= window {
			if c := <-confirms; !c.Ack {
				b.Error("nacked")
				return
			}
			inFlight--
		}
		if err := ch.Publish(exchange, "", true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(sent), Timestamp: time.Now(), Body: benchPayload,
		}); err != nil {
			b.Error(err)
			return
		}
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		if c := <-confirms; !c.Ack {
			b.Error("nacked")
			return
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic, _, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		adapterPublish(b, c, topic, b.N)
		reportRate(b, b.N, time.Since(start))
	})
	b.Run("adapter-4-publishers", func(b *testing.B) {
		c, _, topic, _, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		parallel(4, b.N, func(n int) { adapterPublish(b, c, topic, n) })
		reportRate(b, b.N, time.Since(start))
	})
	b.Run("raw-batch", func(b *testing.B) {
		_, raw, topic, _, _ := benchSetup(b)
		ch := rawConfirmChannel(b, raw)
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		rawPublishBatches(b, ch, topic, b.N)
		reportRate(b, b.N, time.Since(start))
	})
	b.Run("raw-window-1000", func(b *testing.B) {
		_, raw, topic, _, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		rawPublishWindow(b, raw, topic, b.N, 1000)
		reportRate(b, b.N, time.Since(start))
	})
}

// parallel splits n over k goroutines running f and waits for them.
func parallel(k, n int, f func(n int)) {
	done := make(chan struct{}, k)
	for i := range k {
		share := n / k
		if i == 0 {
			share += n % k
		}
		go func() { f(share); done <- struct{}{} }()
	}
	for range k {
		<-done
	}
}

// adapterConsume consumes n messages from group with the adapter
// (concurrency 1, prefetch benchPrefetch) and returns how long it took.
func adapterConsume(b *testing.B, c *rabbitmq.Client, topic, group string, n int, before func()) time.Duration {
	b.Helper()
	var got atomic.Int64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
		if got.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}, messaging.Group(group), messaging.Prefetch(benchPrefetch))
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if before != nil {
		before()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("consumed %d of %d", got.Load(), n)
	}
	return time.Since(start)
}

// rawAcker acknowledges raw deliveries in batches: one basic.ack
// multiple=true per benchAckEvery deliveries (the fastest raw configuration
// found; acking each delivery halves the consume rate).
type rawAcker struct {
	ch      *amqp.Channel
	last    uint64
	pending int
}

func (a *rawAcker) ack(d amqp.Delivery) error {
	a.last = d.DeliveryTag
	if a.pending++; a.pending < benchAckEvery {
		return nil
	}
	return a.flush()
}

func (a *rawAcker) flush() error {
	if a.pending == 0 {
		return nil
	}
	a.pending = 0
	return a.ch.Ack(a.last, true)
}

// rawConsume consumes n messages from queue with QoS prefetch benchPrefetch,
// acknowledging them in batches (rawAcker), and returns how long it took.
func rawConsume(b *testing.B, conn *amqp.Connection, queue string, n int, before func()) time.Duration {
	b.Helper()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Qos(benchPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	if before != nil {
		go before()
	}
	acks := &rawAcker{ch: ch}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for got := 0; got < n; got++ {
		select {
		case d := <-deliveries:
			if err := acks.ack(d); err != nil {
				b.Fatal(err)
			}
		case <-timeout.C:
			b.Fatalf("consumed %d of %d", got, n)
		}
	}
	d := time.Since(start)
	if err := acks.flush(); err != nil {
		b.Fatal(err)
	}
	return d
}

func BenchmarkConsume(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, raw, topic, group, _ := benchSetup(b)
		rawPublishWindow(b, raw, topic, b.N, 1000)
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, adapterConsume(b, c, topic, group, b.N, nil))
	})
	b.Run("raw", func(b *testing.B) {
		_, raw, topic, _, queue := benchSetup(b)
		rawPublishWindow(b, raw, topic, b.N, 1000)
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, rawConsume(b, raw, queue, b.N, nil))
	})
}

// BenchmarkEndToEnd publishes (one publisher, batches of benchBatch) while a
// consumer of the group runs, until every message is consumed.
func BenchmarkEndToEnd(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic, group, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, adapterConsume(b, c, topic, group, b.N, func() {
			go adapterPublish(b, c, topic, b.N)
		}))
	})
	b.Run("raw", func(b *testing.B) {
		_, raw, topic, _, queue := benchSetup(b)
		ch := rawConfirmChannel(b, raw)
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, rawConsume(b, raw, queue, b.N, func() {
			rawPublishBatches(b, ch, topic, b.N)
		}))
	})
}

// BenchmarkInterleaved measures the adapter and raw amqp091-go in
// alternating chunks of the same run, so both see the same broker and
// machine load (the separate benchmarks above swing by ±30% on a shared
// machine): publishing, consuming, and both at once (end-to-end). It
// reports both rates and their ratio.
func BenchmarkInterleaved(b *testing.B) {
	const chunk = 1000
	report := func(b *testing.B, n int, adapter, raw time.Duration) {
		b.ReportMetric(float64(n)/adapter.Seconds(), "adapter-msgs/s")
		b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
		b.ReportMetric(raw.Seconds()/adapter.Seconds(), "ratio")
	}
	b.Run("publish", func(b *testing.B) {
		c, raw, topic, _, _ := benchSetup(b)
		ch := rawConfirmChannel(b, raw)
		b.SetBytes(benchSize)
		b.ResetTimer()
		var ta, tr time.Duration
		for done, round := 0, 0; done < b.N; round++ {
			k := min(chunk, b.N-done)
			runA := func() { s := time.Now(); adapterPublish(b, c, topic, k); ta += time.Since(s) }
			runR := func() { s := time.Now(); rawPublishBatches(b, ch, topic, k); tr += time.Since(s) }
			if round%2 == 0 {
				runA()
				runR()
			} else {
				runR()
				runA()
			}
			done += k
		}
		report(b, b.N, ta, tr)
	})
	b.Run("consume", func(b *testing.B) {
		c, raw, topic, groupA, _ := benchSetup(b)
		groupB := integration.UniqueName(b, "g")
		if err := c.Provision(context.Background(), topic, groupB); err != nil {
			b.Fatal(err)
		}
		// Every message lands in both groups' queues.
		rawPublishWindow(b, raw, topic, b.N, 1000)
		tokens, handled := make(chan struct{}, chunk), make(chan struct{}, chunk)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
			<-tokens
			handled <- struct{}{}
			return nil
		}, messaging.Group(groupA), messaging.Prefetch(benchPrefetch))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { cancel(); close(tokens); _ = sub.Close() }()
		ch, err := raw.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Qos(benchPrefetch, 0, false); err != nil {
			b.Fatal(err)
		}
		deliveries, err := ch.Consume(topic+"~"+groupB, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		acks := &rawAcker{ch: ch}
		b.SetBytes(benchSize)
		b.ResetTimer()
		var ta, tr time.Duration
		for done, round := 0, 0; done < b.N; round++ {
			k := min(chunk, b.N-done)
			runA := func() {
				s := time.Now()
				for range k {
					tokens <- struct{}{}
				}
				for range k {
					<-handled
				}
				ta += time.Since(s)
			}
			runR := func() {
				s := time.Now()
				for range k {
					if err := acks.ack(<-deliveries); err != nil {
						b.Fatal(err)
					}
				}
				tr += time.Since(s)
				if err := acks.flush(); err != nil {
					b.Fatal(err)
				}
			}
			if round%2 == 0 {
				runA()
				runR()
			} else {
				runR()
				runA()
			}
			done += k
		}
		report(b, b.N, ta, tr)
	})
	b.Run("end-to-end", func(b *testing.B) {
		// Separate topics: the adapter's chunks go through topicA and its
		// group, the raw ones through topicR and its group's queue. Each
		// chunk publishes (one publisher, batches of benchBatch) while that
		// side's consumer runs, until the consumer has handled the chunk.
		c, _, topicA, groupA, _ := benchSetup(b)
		_, raw, topicR, _, queueR := benchSetup(b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		handledA, handledR := make(chan struct{}, chunk), make(chan struct{}, chunk)
		sub, err := c.Subscribe(ctx, topicA, func(context.Context, *messaging.Message) error {
			handledA <- struct{}{}
			return nil
		}, messaging.Group(groupA), messaging.Prefetch(benchPrefetch))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { cancel(); _ = sub.Close() }()
		pubR := rawConfirmChannel(b, raw)
		conR, err := raw.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := conR.Qos(benchPrefetch, 0, false); err != nil {
			b.Fatal(err)
		}
		deliveries, err := conR.Consume(queueR, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			// Chunks are multiples of benchAckEvery, so each ends with an ack.
			acks := &rawAcker{ch: conR}
			for d := range deliveries {
				if err := acks.ack(d); err != nil {
					b.Error(err)
					return
				}
				handledR <- struct{}{}
			}
		}()
		defer conR.Close()
		// run times publish(k) in its own goroutine with k deliveries.
		run := func(k int, publish func(int), handled chan struct{}) time.Duration {
			s := time.Now()
			published := make(chan struct{})
			go func() { publish(k); close(published) }()
			timeout := time.After(time.Minute)
			for range k {
				select {
				case <-handled:
				case <-timeout:
					b.Fatal("end-to-end chunk timed out")
				}
			}
			<-published
			return time.Since(s)
		}
		pubA := func(k int) { adapterPublish(b, c, topicA, k) }
		pubRaw := func(k int) { rawPublishBatches(b, pubR, topicR, k) }
		b.SetBytes(benchSize)
		b.ResetTimer()
		var ta, tr time.Duration
		for done, round := 0, 0; done < b.N; round++ {
			k := min(chunk, b.N-done)
			if round%2 == 0 {
				ta += run(k, pubA, handledA)
				tr += run(k, pubRaw, handledR)
			} else {
				tr += run(k, pubRaw, handledR)
				ta += run(k, pubA, handledA)
			}
			done += k
		}
		report(b, b.N, ta, tr)
	})
}

// BenchmarkPacedLatency: 1 KiB messages published one per call at 1,000
// msg/s to a group's quorum queue, reporting the delivery latency's p50,
// p99 and max (integration.PacedLatency): the adapter (Publish, Subscribe
// with a Group, default settings) beside raw amqp091-go, a persistent
// publish of the plain body (no ID, no headers) waiting for its confirm,
// and a consumer (QoS rabbitmq.DefaultPrefetch, as the adapter's) acking
// each delivery.
//
//	go test -run '^$' -bench PacedLatency -benchtime 3000x ./adapters/rabbitmq/rabbitmqtest/
func BenchmarkPacedLatency(b *testing.B) {
	const rate = 1000
	b.Run("adapter", func(b *testing.B) {
		c, _, topic, group, _ := benchSetup(b)
		integration.PacedLatencyClient(b, rate, c, topic, messaging.Group(group))
	})
	b.Run("raw", func(b *testing.B) {
		_, raw, topic, _, queue := benchSetup(b)
		pub := rawConfirmChannel(b, raw)
		integration.PacedLatency(b, rate, func(ctx context.Context, p []byte) error {
			dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, topic, "", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: p})
			if err != nil {
				return err
			}
			ok, err := dc.WaitContext(ctx)
			if err == nil && !ok {
				err = errors.New("rabbitmqtest: publish nacked")
			}
			return err
		}, func(deliver func([]byte)) func() {
			ch, err := raw.Channel()
			if err != nil {
				b.Fatal(err)
			}
			if err := ch.Qos(rabbitmq.DefaultPrefetch, 0, false); err != nil {
				b.Fatal(err)
			}
			deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for d := range deliveries {
					deliver(d.Body)
					if err := d.Ack(false); err != nil {
						b.Error(err) // and drain on, so that Close returns
					}
				}
			}()
			return func() { _ = ch.Close(); <-done }
		})
	})
}
