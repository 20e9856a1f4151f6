package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
)

// generator is a driver whose broker answers at once: Receive returns as
// many new messages as the engine has room for, Settle and Close do
// nothing. What BenchmarkEngine measures is the engine alone.
type generator struct{}

func (generator) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{Groups: true, BrokerAttempts: true}
}

func (generator) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return generator{}, nil
}

func (generator) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]driver.Delivery, n)
	for i := range out {
		m := &messaging.Message{ID: "id", Payload: []byte("x"), Attempt: 1}
		out[i] = driver.Delivery{Msg: m, Token: m}
	}
	return out, nil
}

func (generator) Settle(context.Context, []driver.Settlement) error { return nil }

func (generator) Close(context.Context) error { return nil }

// BenchmarkEngine: the engine's cost per message between a broker that
// answers at once and a handler that does nothing, with the default
// concurrency and with 8 workers.
func BenchmarkEngine(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []messaging.SubscribeOption
	}{{"concurrency-1", nil}, {"concurrency-8", []messaging.SubscribeOption{messaging.Concurrency(8)}}} {
		b.Run(bc.name, func(b *testing.B) {
			c := engine.New(generator{}, engine.Options{DefaultPrefetch: 256})
			var got atomic.Int64
			done := make(chan struct{})
			n := int64(b.N)
			b.ResetTimer()
			start := time.Now()
			sub, err := c.Subscribe(context.Background(), "t", func(context.Context, *messaging.Message) error {
				if got.Add(1) == n {
					close(done)
				}
				return nil
			}, append([]messaging.SubscribeOption{messaging.Group("g")}, bc.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			_ = sub.Close()
			_ = c.Close()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
