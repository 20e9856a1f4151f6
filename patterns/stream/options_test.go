package stream_test

import (
	"context"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/stream"
)

// TestArgumentsRejected: a nil handler, a buffer below 1 and a negative
// Projection.Every are rejected with ErrInvalidOption instead of being
// clamped.
func TestArgumentsRejected(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := context.Background()
	_, err := stream.Replay[string](ctx, c, "log", messaging.Earliest, nil, nil)
	mwtest.WantInvalid(t, "stream", "Replay nil handler", err, "Replay", "handler")
	for _, n := range []int{0, -1} {
		tail, err := stream.NewTail[string](ctx, c, "log", messaging.Earliest, n, nil)
		if tail != nil {
			t.Errorf("NewTail(buffer %d) returned a tail", n)
		}
		mwtest.WantInvalid(t, "stream", "NewTail buffer", err, "NewTail", "buffer")
	}
	p := &stream.Projection[string, int]{Name: "p", Topic: "log", Every: -1, Apply: func(s int, _ string, _ *messaging.Message) int { return s }}
	mwtest.WantInvalid(t, "stream", "Every -1", p.Run(ctx, c), "Every")
	p = &stream.Projection[string, int]{Name: "a b", Topic: "log", Apply: func(s int, _ string, _ *messaging.Message) int { return s }}
	mwtest.WantInvalid(t, "stream", "bad name", p.Run(ctx, c), "name")
}
