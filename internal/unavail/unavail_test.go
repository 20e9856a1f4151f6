package unavail

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

var errDown = errors.New("connection refused")

func isDown(err error) bool { return errors.Is(err, errDown) }

// TestRetry: an unreachable broker is retried until the timeout, then the
// error wraps ErrUnavailable; a ctx ending first gives its error; another
// failure or a success ends the retries at once.
func TestRetry(t *testing.T) {
	down := func(context.Context) error { return errDown }
	begin := time.Now()
	err := Retry(context.Background(), "x", "op", 300*time.Millisecond, isDown, down)
	if took := time.Since(begin); !errors.Is(err, messaging.ErrUnavailable) || !errors.Is(err, errDown) || took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("unreachable: %v after %v, want ErrUnavailable and the last failure after 300ms", err, took)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = Retry(ctx, "x", "op", time.Hour, isDown, down)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, messaging.ErrUnavailable) {
		t.Errorf("ctx ended first: %v, want its error", err)
	}

	other, calls := errors.New("denied"), 0
	err = Retry(context.Background(), "x", "op", time.Hour, isDown, func(context.Context) error {
		calls++
		if calls < 3 {
			return errDown
		}
		return other
	})
	if err != other || calls != 3 {
		t.Errorf("another failure: %v after %d calls, want it as it is after 3", err, calls)
	}

	// A client may answer without looking at an ended ctx: f is not called.
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	calls = 0
	err = Retry(cancelled, "x", "op", time.Hour, isDown, func(context.Context) error {
		calls++
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("cancelled ctx: %v after %d calls, want context.Canceled and none", err, calls)
	}
}
