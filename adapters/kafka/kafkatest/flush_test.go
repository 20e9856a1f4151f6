package kafkatest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestFlushWaitsForImmediateFailureCallback: Flush waits for the callback
// of a message PublishAsync fails at once (here an invalid header) while
// that callback runs on another goroutine (messaging.AsyncPublisher:
// "Flush waits until every message given to PublishAsync on this client,
// including those given concurrently while it waits, has its result and
// its callback has returned").
func TestFlushWaitsForImmediateFailureCallback(t *testing.T) {
	c := kafkatest.Open(t)
	t.Cleanup(func() { _ = c.Close() })
	topic := integration.UniqueName(t, "flushfail")
	inCallback, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		m := &messaging.Message{Header: messaging.Header{"msgkit-reserved": "x"}}
		c.PublishAsync(t.Context(), topic, m, func(_ *messaging.Message, err error) {
			if !errors.Is(err, messaging.ErrInvalidHeader) {
				t.Errorf("PublishAsync of a reserved header: %v, want ErrInvalidHeader", err)
			}
			close(inCallback)
			<-release
		})
		close(returned)
	}()
	<-inCallback
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := c.Flush(ctx)
	close(release)
	<-returned
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush while a PublishAsync callback runs: %v, want it to wait (context.DeadlineExceeded at its ctx's end)", err)
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatalf("Flush once the callback returned: %v", err)
	}
}
