package natstest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
)

// BenchmarkRead reads b.N stored 1 KiB messages from the start of the log:
// the adapter's Read beside raw nats.go's ordered consumer (what Read used
// to run on), through Messages with its default buffer.
func BenchmarkRead(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		c, js, topic := benchClient(b)
		rawPublish(b, js, topic, b.N)
		b.ResetTimer()
		var got atomic.Int64
		done := make(chan struct{})
		sub, err := c.Read(context.Background(), topic, messaging.Earliest, func(context.Context, *messaging.Message) error {
			if got.Add(1) == int64(b.N) {
				close(done)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Errorf("read %d of %d messages in 2 minutes", got.Load(), b.N)
		}
		b.StopTimer()
		_ = sub.Close()
		msgsPerSec(b, b.N)
	})
	b.Run("raw", func(b *testing.B) {
		c, js, topic := benchClient(b)
		rawPublish(b, js, topic, b.N)
		b.ResetTimer()
		cons, err := js.OrderedConsumer(context.Background(), c.StreamName(topic), jetstream.OrderedConsumerConfig{FilterSubjects: []string{topic}})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages()
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if _, err := it.Next(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		it.Stop()
		msgsPerSec(b, b.N)
	})
}
