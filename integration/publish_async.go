package integration

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

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

// HandedOn is a context for a PublishAsync message that tells a test when
// the message's lane has handed it on to the adapter's send (then its turn
// to be sent may still be to come: behind another request, a pipeline,
// a connection): Done of HandedOn closes at the second call of Err, as
// the library's PublishAsync checks a message's ctx once when it is given
// and once more when its lane hands the message's batch on.
type HandedOn struct {
	context.Context
	calls    atomic.Int32
	handedOn chan struct{}
}

// NewHandedOn returns a HandedOn whose deadline, values and end are
// parent's.
func NewHandedOn(parent context.Context) *HandedOn {
	return &HandedOn{Context: parent, handedOn: make(chan struct{})}
}

// Err is parent's Err; its second call closes HandedOn's channel.
func (c *HandedOn) Err() error {
	err := c.Context.Err()
	if c.calls.Add(1) == 2 {
		close(c.handedOn)
	}
	return err
}

// HandedOn returns the channel closed once the message was handed on.
func (c *HandedOn) HandedOn() <-chan struct{} { return c.handedOn }

// awaitClosing returns once Close, started on another goroutine, refuses
// new PublishAsync messages (they fail at once with messaging.ErrClosed);
// it fails t when a message fails otherwise or ctx ends first. Messages it
// gives to PublishAsync before Close refuses them get their results later.
func awaitClosing(t testing.TB, ctx context.Context, p messaging.AsyncPublisher, topic string) {
	t.Helper()
	for {
		refused := make(chan error, 1)
		p.PublishAsync(ctx, topic, messaging.NewMessage([]byte("late")), func(_ *messaging.Message, err error) { refused <- err })
		select {
		case err := <-refused:
			if !errors.Is(err, messaging.ErrClosed) {
				t.Fatalf("PublishAsync while Close waits: %v, want ErrClosed", err)
			}
			return
		default:
		}
		if ctx.Err() != nil {
			t.Fatal("Close never refused PublishAsync")
		}
		time.Sleep(time.Millisecond) // polling Close's start
	}
}

// CloseWhileHeld calls c's Close on another goroutine, waits until it
// refuses new PublishAsync messages (awaitClosing on topic), then closes
// release (letting go of what the test held at the broker, so that the
// messages sent get their answers) and waits for Close to return nil,
// failing t when it returns an error or ctx ends first.
func CloseWhileHeld(t testing.TB, ctx context.Context, c interface {
	messaging.AsyncPublisher
	Close() error
}, topic string, release chan struct{}) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	awaitClosing(t, ctx, c, topic)
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
}
