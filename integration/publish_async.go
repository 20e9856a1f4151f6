package integration

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/msgkit/messaging"
)

// PublishAsyncN publishes n messages of payload to topic with p's
// PublishAsync from the calling goroutine, as a benchmark's asynchronous
// publisher does, then flushes. It returns the first message's failure
// (or Flush's error). The callback it passes allocates nothing on success,
// so that the benchmarks using it measure the adapter.
func PublishAsyncN(ctx context.Context, p messaging.AsyncPublisher, topic string, n int, payload []byte) error {
	var failed atomic.Pointer[error]
	done := func(_ *messaging.Message, err error) {
		if err != nil {
			e := err // only a failure allocates (&err would, per call)
			failed.CompareAndSwap(nil, &e)
		}
	}
	for range n {
		p.PublishAsync(ctx, topic, &messaging.Message{Payload: payload}, done)
	}
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("integration: flush: %w", err)
	}
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}
