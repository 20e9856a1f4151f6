package natstest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	natsgo "github.com/nats-io/nats.go"

	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/integration"
)

// BenchmarkPublishAsync: one goroutine publishes b.N 1 KiB messages
// asynchronously and waits for all acknowledgements: the adapter's
// PublishAsync then Flush, beside raw JetStream PublishAsync then
// PublishAsyncComplete (plain messages: no ID, no extra header; 4096 in
// flight, as the adapter's window), and the raw client with IDs.
func BenchmarkPublishAsync(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, _, topic := benchClient(b)
		b.ResetTimer()
		adapterPublishAsync(b, c, topic, b.N)
		msgsPerSec(b, b.N)
	})
	b.Run("adapter-caller-ids", func(b *testing.B) {
		c, _, topic := benchClient(b, natsadapter.WithCallerIDs())
		b.ResetTimer()
		adapterPublishAsync(b, c, topic, b.N)
		msgsPerSec(b, b.N)
	})
	b.Run("raw", func(b *testing.B) {
		_, js, topic := benchClient(b)
		b.ResetTimer()
		rawPublish(b, js, topic, b.N)
		msgsPerSec(b, b.N)
	})
	// The raw client with a Nats-Msg-Id on every message, as the adapter
	// sends (the stream deduplicates by it): the cost of the ID contract.
	b.Run("raw-ids", func(b *testing.B) {
		_, js, topic := benchClient(b)
		b.ResetTimer()
		rawPublishIDs(b, js, topic, b.N)
		msgsPerSec(b, b.N)
	})
	// The raw client sending what the adapter sends (a version 7 UUID as
	// Nats-Msg-Id, which carries the publish time too): the cost of the
	// wire format, apart from the adapter's own work.
	b.Run("raw-adapter-headers", func(b *testing.B) {
		_, js, topic := benchClient(b)
		b.ResetTimer()
		for range b.N {
			h := natsgo.Header{}
			h.Set(natsadapter.HeaderMsgID, uuid.Must(uuid.NewV7()).String())
			if _, err := js.PublishMsgAsync(&natsgo.Msg{Subject: topic, Data: payload1K, Header: h}); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("raw publish: acks not complete after 1 minute")
		}
		msgsPerSec(b, b.N)
	})
}

func adapterPublishAsync(b *testing.B, c *natsadapter.Client, topic string, n int) {
	if err := integration.PublishAsyncN(context.Background(), c, topic, n, payload1K); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEndToEndAsync: BenchmarkEndToEnd with one goroutine publishing
// asynchronously: the adapter's PublishAsync beside raw JetStream
// PublishAsync with plain messages (no ID, no extra header).
func BenchmarkEndToEndAsync(b *testing.B) {
	adapterEndToEnd(b, adapterPublishAsync)
	b.Run("raw", func(b *testing.B) {
		_, js, topic := benchClient(b)
		b.ResetTimer()
		var wg sync.WaitGroup
		wg.Go(func() { rawConsume(b, js, topic, b.N) })
		rawPublish(b, js, topic, b.N)
		wg.Wait()
		msgsPerSec(b, b.N)
	})
}
