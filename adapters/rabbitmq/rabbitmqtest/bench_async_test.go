package rabbitmqtest_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging/integration"
)

// rawPublishPlainWindow is rawPublishWindow with plain messages: no message
// ID and no timestamp, what a user writes when none is asked for (the plain
// raw baseline).
func rawPublishPlainWindow(b *testing.B, conn *amqp.Connection, exchange string, n, window int) {
	b.Helper()
	ch := rawConfirmChannel(b, conn)
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	inFlight := 0
	for range n {
		for inFlight >= window {
			if c := <-confirms; !c.Ack {
				b.Fatal("nacked")
			}
			inFlight--
		}
		if err := ch.Publish(exchange, "", true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: benchPayload}); err != nil {
			b.Fatal(err)
		}
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		if c := <-confirms; !c.Ack {
			b.Fatal("nacked")
		}
	}
}

// BenchmarkPublishAsync: one goroutine publishes b.N 1 KiB messages
// asynchronously and waits for all confirms: the adapter's PublishAsync
// then Flush, beside raw amqp091 with publisher confirms and a sliding
// window of 1000 unconfirmed plain messages.
func BenchmarkPublishAsync(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic, _, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		if err := integration.PublishAsyncN(context.Background(), c, topic, b.N, benchPayload); err != nil {
			b.Fatal(err)
		}
		reportRate(b, b.N, time.Since(start))
	})
	b.Run("raw", func(b *testing.B) {
		_, raw, topic, _, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		start := time.Now()
		rawPublishPlainWindow(b, raw, topic, b.N, 1000)
		reportRate(b, b.N, time.Since(start))
	})
}

// BenchmarkEndToEndAsync: BenchmarkEndToEnd with one goroutine publishing
// asynchronously: the adapter's PublishAsync then Flush, beside raw
// amqp091 with a sliding window of 1000 unconfirmed plain messages (as
// BenchmarkPublishAsync's raw side), while a consumer of the group runs.
func BenchmarkEndToEndAsync(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic, group, _ := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, adapterConsume(b, c, topic, group, b.N, func() {
			go func() {
				if err := integration.PublishAsyncN(context.Background(), c, topic, b.N, benchPayload); err != nil {
					b.Error(err)
				}
			}()
		}))
	})
	b.Run("raw", func(b *testing.B) {
		_, raw, topic, _, queue := benchSetup(b)
		b.SetBytes(benchSize)
		b.ResetTimer()
		reportRate(b, b.N, rawConsume(b, raw, queue, b.N, func() {
			rawPublishPlainWindow(b, raw, topic, b.N, 1000)
		}))
	})
}
