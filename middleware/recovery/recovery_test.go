package recovery_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/recovery"
)

func TestPanicBecomesError(t *testing.T) {
	var got any
	var stack []byte
	h := mwtest.Must(recovery.New(recovery.WithOnPanic(func(_ context.Context, _ *messaging.Message, v any, s []byte) { got, stack = v, s })))(
		func(context.Context, *messaging.Message) error { panic("kaboom") })
	err := h(context.Background(), &messaging.Message{})
	if !errors.Is(err, messaging.ErrHandlerPanic) || messaging.IsPermanent(err) || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("got %v, want a retryable ErrHandlerPanic naming the value", err)
	}
	if got != "kaboom" || !strings.Contains(string(stack), "recovery_test") {
		t.Fatalf("hook got %v and a stack without the panicking function", got)
	}
}

func TestPermanentOptionAndPassThrough(t *testing.T) {
	h := mwtest.Must(recovery.New(recovery.WithPermanent()))(func(context.Context, *messaging.Message) error { panic(errors.New("x")) })
	if err := h(context.Background(), &messaging.Message{}); !messaging.IsPermanent(err) || !errors.Is(err, messaging.ErrHandlerPanic) {
		t.Fatalf("got %v, want permanent ErrHandlerPanic", err)
	}
	errPlain := errors.New("plain")
	h = mwtest.Must(recovery.New())(func(context.Context, *messaging.Message) error { return errPlain })
	if err := h(context.Background(), &messaging.Message{}); err != errPlain {
		t.Fatalf("got %v, want the handler's error unchanged", err)
	}
}

// TestPanicErrorCarriesStack: the error of a recovered panic has the stack
// in its text (where the panic happened), not only the value.
func TestPanicErrorCarriesStack(t *testing.T) {
	h := mwtest.Must(recovery.New())(func(context.Context, *messaging.Message) error { panic("kaboom") })
	err := h(context.Background(), &messaging.Message{})
	if !errors.Is(err, messaging.ErrHandlerPanic) || !strings.Contains(err.Error(), "recovery_test.go") {
		t.Fatalf("got %q, want an ErrHandlerPanic whose text has the stack of the panicking handler", err)
	}
}
