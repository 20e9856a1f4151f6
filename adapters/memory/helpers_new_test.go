package memory_test

import (
	"context"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// mustNew is memory.New failing the test on an error.
func mustNew(tb testing.TB, opts ...memory.Option) *memory.Client {
	tb.Helper()
	c, err := memory.New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// mustNewClient is b.NewClient failing the test on an error.
func mustNewClient(tb testing.TB, b *memory.Broker) *memory.Client {
	tb.Helper()
	c, err := b.NewClient()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// deliveries subscribes c to topic with opts, handing every message to the
// returned channel (buffered for n) and acknowledging it; the subscription
// is closed when the test ends.
func deliveries(t *testing.T, c *memory.Client, topic string, n int, opts ...messaging.SubscribeOption) <-chan *messaging.Message {
	t.Helper()
	got := make(chan *messaging.Message, n)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return got
}
