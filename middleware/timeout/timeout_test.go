package timeout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/timeout"
)

func TestDeadlineEndsSlowHandler(t *testing.T) {
	h := mwtest.Must(timeout.New(20 * time.Millisecond))(func(ctx context.Context, _ *messaging.Message) error {
		<-ctx.Done()
		return ctx.Err()
	})
	err := h(context.Background(), &messaging.Message{})
	if !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || messaging.IsPermanent(err) {
		t.Fatalf("got %v, want a retryable ErrTimeout", err)
	}
}

func TestFastHandlerAndParentCancel(t *testing.T) {
	h := mwtest.Must(timeout.New(time.Minute))(func(ctx context.Context, _ *messaging.Message) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("handler context has no deadline")
		}
		return nil
	})
	if err := h(context.Background(), &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h = mwtest.Must(timeout.New(time.Minute))(func(ctx context.Context, _ *messaging.Message) error { return ctx.Err() })
	if err := h(ctx, &messaging.Message{}); errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("parent cancel reported as %v", err)
	}
}

// TestNilAfterDeadlineIsSuccess: a handler that returns nil although its
// deadline passed has succeeded; the layer does not turn it into ErrTimeout.
func TestNilAfterDeadlineIsSuccess(t *testing.T) {
	h := mwtest.Must(timeout.New(time.Millisecond))(func(ctx context.Context, _ *messaging.Message) error {
		<-ctx.Done()
		return nil
	})
	if err := h(context.Background(), &messaging.Message{}); err != nil {
		t.Fatalf("got %v, want nil: a success after the deadline still counts", err)
	}
}

// TestZeroDisables: New(0) only passes the message on: the handler's
// context gets no deadline, and its error is returned as it is.
func TestZeroDisables(t *testing.T) {
	errPlain := errors.New("plain")
	h := mwtest.Must(timeout.New(0))(func(ctx context.Context, _ *messaging.Message) error {
		if _, ok := ctx.Deadline(); ok || ctx.Err() != nil {
			t.Errorf("handler context has a deadline (err %v), want none with New(0)", ctx.Err())
		}
		return errPlain
	})
	if err := h(context.Background(), &messaging.Message{}); err != errPlain {
		t.Fatalf("got %v, want the handler's error unchanged", err)
	}
}
