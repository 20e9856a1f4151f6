package logging_test

import (
	"log/slog"
	"testing"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/logging"
)

// TestConstructorsRejectInvalidArguments: New and Publisher reject a nil
// logger, Publisher a nil publisher; every level is a valid
// WithSuccessLevel.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	mw, err := logging.New(nil)
	if mw != nil {
		t.Error("New(nil) returned a middleware")
	}
	mwtest.WantInvalid(t, "logging", "New(nil)", err, "New", "logger")
	p, err := logging.Publisher(mwtest.Memory(t), nil)
	if p != nil {
		t.Error("Publisher with a nil logger returned a publisher")
	}
	mwtest.WantInvalid(t, "logging", "Publisher(p, nil)", err, "Publisher", "logger")
	_, err = logging.Publisher(nil, slog.Default())
	mwtest.WantInvalid(t, "logging", "Publisher(nil, l)", err, "Publisher", "publisher")

	for _, l := range []slog.Level{slog.LevelDebug - 4, slog.LevelInfo, slog.LevelError + 4} {
		if _, err := logging.New(slog.Default(), logging.WithSuccessLevel(l), nil); err != nil {
			t.Errorf("WithSuccessLevel(%v): %v", l, err)
		}
		if _, err := logging.Publisher(mwtest.Memory(t), slog.Default(), logging.WithSuccessLevel(l)); err != nil {
			t.Errorf("Publisher WithSuccessLevel(%v): %v", l, err)
		}
	}
}
