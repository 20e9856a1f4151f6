package recovery_test

import (
	"context"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/recovery"
)

// TestOptionsRejectInvalidValues: a nil WithOnPanic function is rejected;
// the valid options are accepted.
func TestOptionsRejectInvalidValues(t *testing.T) {
	mw, err := recovery.New(recovery.WithPermanent(), recovery.WithOnPanic(nil))
	if mw != nil {
		t.Error("New returned a middleware with an invalid option")
	}
	mwtest.WantInvalid(t, "recovery", "WithOnPanic(nil)", err, "WithOnPanic")
	if _, err := recovery.New(nil, recovery.WithPermanent(),
		recovery.WithOnPanic(func(context.Context, *messaging.Message, any, []byte) {})); err != nil {
		t.Error(err)
	}
}
