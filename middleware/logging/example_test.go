package logging_test

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/logging"
)

// Each handled message is logged with its topic, ID and outcome; failures
// at Warn, successes at Debug unless WithSuccessLevel says otherwise.
func ExampleNew() {
	// A text logger without the time and duration, for a stable output.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Value.Kind() == slog.KindDuration {
				return slog.Attr{}
			}
			return a
		},
	}))
	mw, err := logging.New(logger, logging.WithSuccessLevel(slog.LevelInfo))
	if err != nil {
		panic(err)
	}
	h := mw(func(_ context.Context, m *messaging.Message) error {
		if string(m.Payload) == "bad" {
			return errors.New("cannot parse order")
		}
		return nil
	})
	_ = h(context.Background(), &messaging.Message{ID: "m1", Topic: "orders", Attempt: 1, Payload: []byte("good")})
	_ = h(context.Background(), &messaging.Message{ID: "m2", Topic: "orders", Attempt: 1, Payload: []byte("bad")})
	// Output:
	// level=INFO msg="message handled" topic=orders group="" id=m1 key="" attempt=1
	// level=WARN msg="message failed, will be retried" topic=orders group="" id=m2 key="" attempt=1 error="cannot parse order"
}
