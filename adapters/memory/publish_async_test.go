package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestFlushWaitsForRunningCallback: Flush waits until the callback of a
// message given to PublishAsync concurrently has returned
// (messaging.AsyncPublisher: "Flush waits until every message given to
// PublishAsync on this client, including those given concurrently while it
// waits, has its result and its callback has returned").
func TestFlushWaitsForRunningCallback(t *testing.T) {
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	inCallback, release := make(chan struct{}), make(chan struct{})
	returned := make(chan struct{})
	go func() {
		c.PublishAsync(t.Context(), "flushwait", messaging.NewMessage([]byte("x")), func(_ *messaging.Message, err error) {
			if err != nil {
				t.Errorf("PublishAsync: %v", err)
			}
			close(inCallback)
			<-release
		})
		close(returned)
	}()
	<-inCallback
	// The callback is still running: Flush must not report the client idle.
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
