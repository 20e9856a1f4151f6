package rabbitmq_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/integration"
)

// The benchmarks publish and consume 1 KiB messages through a topic exchange
// into one quorum queue (a group), with the adapter and with raw amqp091-go
// doing the same work, and report msgs/s so the overhead is a ratio. Run
// them short, e.g.
//
//	go test -run '^$' -bench . -benchtime 20000x ./adapters/rabbitmq/
const (
	benchSize     = 1024
	benchBatch    = 100 // messages per Publish call / per confirm wait
	benchPrefetch = 100
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
	url := integration.RabbitMQ.Endpoint(b)
	c = integration.OpenRabbitMQ(b, url)
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

// rawPublishBatches publishes n messages on one confirm-mode channel,
// benchBatch in flight, then waits for all their confirms: the same work as
// one adapter Publish call per batch.
func rawPublishBatches(b *testing.B, conn *amqp.Connection, exchange string, n int) {
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
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		rawPublishBatches(b, raw, topic, b.N)
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

// rawConsume consumes n messages from queue with QoS prefetch benchPrefetch,
// acknowledging each, and returns how long it took.
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
	for got := 0; got < n; got++ {
		select {
		case d := <-deliveries:
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		case <-time.After(5 * time.Minute):
			b.Fatalf("consumed %d of %d", got, n)
		}
	}
	return time.Since(start)
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
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, rawConsume(b, raw, queue, b.N, func() {
			rawPublishBatches(b, raw, topic, b.N)
		}))
	})
}

// BenchmarkInterleaved measures the adapter and raw amqp091-go in
// alternating chunks of the same run, so both see the same broker and
// machine load (the separate benchmarks above swing by ±30% on a shared
// machine). It reports both rates and their ratio.
func BenchmarkInterleaved(b *testing.B) {
	const chunk = 1000
	report := func(b *testing.B, n int, adapter, raw time.Duration) {
		b.ReportMetric(float64(n)/adapter.Seconds(), "adapter-msgs/s")
		b.ReportMetric(float64(n)/raw.Seconds(), "raw-msgs/s")
		b.ReportMetric(raw.Seconds()/adapter.Seconds(), "ratio")
	}
	b.Run("publish", func(b *testing.B) {
		c, raw, topic, _, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		var ta, tr time.Duration
		for done, round := 0, 0; done < b.N; round++ {
			k := min(chunk, b.N-done)
			runA := func() { s := time.Now(); adapterPublish(b, c, topic, k); ta += time.Since(s) }
			runR := func() { s := time.Now(); rawPublishBatches(b, raw, topic, k); tr += time.Since(s) }
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
					if err := (<-deliveries).Ack(false); err != nil {
						b.Fatal(err)
					}
				}
				tr += time.Since(s)
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
}
