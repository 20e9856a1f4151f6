package memory_test

import (
	"testing"

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
