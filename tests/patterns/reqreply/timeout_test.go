package reqreply_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/reqreply"
)

// stuckClient is a memory client whose Publish blocks until its context is
// done, like a NATS client during a reconnect: it signals entered first.
type stuckClient struct {
	*memory.Client
	entered chan struct{}
}

func (c *stuckClient) Publish(ctx context.Context, _ string, _ ...*messaging.Message) error {
	c.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestRequestTimingOutWhileSendingIsErrTimeout: a deadline that passes while
// the request is being published is ErrTimeout (wrapping
// context.DeadlineExceeded), as in native mode; a caller's cancellation
// during the publish is still a cancellation.
func TestRequestTimingOutWhileSendingIsErrTimeout(t *testing.T) {
	c := &stuckClient{Client: mwtest.Memory(t), entered: make(chan struct{}, 1)}
	r, err := reqreply.NewRequester[string, string](t.Context(), c, reqreply.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	_, err = r.Request(t.Context(), "rpc", "x")
	if !errors.Is(err, reqreply.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Requester timeout: err = %v, want ErrTimeout wrapping context.DeadlineExceeded", err)
	}
	<-c.entered

	// The caller's own deadline, shorter than the Requester's timeout.
	r2, err := reqreply.NewRequester[string, string](t.Context(), c, reqreply.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r2.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = r2.Request(ctx, "rpc", "x")
	if !errors.Is(err, reqreply.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller's deadline: err = %v, want ErrTimeout wrapping context.DeadlineExceeded", err)
	}
	<-c.entered

	// Cancelled by the caller while sending: not a timeout.
	ctx, cancel = context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r2.Request(ctx, "rpc", "x")
		done <- err
	}()
	<-c.entered
	cancel()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Request did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, reqreply.ErrTimeout) {
		t.Errorf("cancelled: err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

// silentClient is a memory client whose Publish accepts messages and drops
// them without setting their Time (as core NATS does).
type silentClient struct{ *memory.Client }

func (silentClient) Publish(context.Context, string, ...*messaging.Message) error { return nil }

// TestTimeoutReportsTheRequestsDuration: the timeout error says how long
// the request waited, measured from the call, not from the message's Time
// (which an adapter may leave unset).
func TestTimeoutReportsTheRequestsDuration(t *testing.T) {
	r, err := reqreply.NewRequester[string, string](t.Context(), silentClient{mwtest.Memory(t)}, reqreply.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	start := time.Now()
	_, err = r.Request(t.Context(), "rpc", "x")
	elapsed := time.Since(start)
	if !errors.Is(err, reqreply.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	checkReportedDuration(t, err, 100*time.Millisecond, elapsed)
}
