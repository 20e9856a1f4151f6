package integration_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestOpenRejectsMalformedURLs: malformed escapes, malformed numbers and
// empty hosts fail on every scheme with ErrInvalidURL or ErrInvalidOption,
// before any connection is tried.
func TestOpenRejectsMalformedURLs(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"nats://127.0.0.1:4222?%zz", messaging.ErrInvalidURL},
		{"redis://127.0.0.1:6379?%zz", messaging.ErrInvalidURL},
		{"kafka://127.0.0.1:9092?%zz", messaging.ErrInvalidURL},
		{"amqp://guest:guest@127.0.0.1:5672/?%zz", messaging.ErrInvalidURL},
		{"mem://x?%zz", messaging.ErrInvalidURL},
		{"nats://127.0.0.1:4222?prefetch=1%", messaging.ErrInvalidURL},
		{"redis://127.0.0.1:6379?max_message_size=1%", messaging.ErrInvalidURL},
		{"kafka://127.0.0.1:9092?max_message_size=1%", messaging.ErrInvalidURL},
		{"amqp://guest:guest@127.0.0.1:5672/?max_message_size=1%", messaging.ErrInvalidURL},
		{"mem://x?max_message_size=1%", messaging.ErrInvalidURL},
		{"nats://127.0.0.1:4222?max_bytes=1%25", messaging.ErrInvalidOption},
		{"redis://127.0.0.1:6379?max_message_size=1%25", messaging.ErrInvalidOption},
		{"kafka://127.0.0.1:9092?max_message_size=1x", messaging.ErrInvalidOption},
		{"amqp://guest:guest@127.0.0.1:5672/?max_message_size=1%25", messaging.ErrInvalidOption},
		{"mem://x?max_message_size=-1", messaging.ErrInvalidOption},
		{"redis://", messaging.ErrInvalidURL},
		{"redis://:6379", messaging.ErrInvalidURL},
		{"rediss://:6379?cluster=true", messaging.ErrInvalidURL},
		{"nats://", messaging.ErrInvalidURL},
		{"nats://:4222", messaging.ErrInvalidURL},
		{"kafka://", messaging.ErrInvalidURL},
		{"kafka://:9092", messaging.ErrInvalidURL},
		{"amqp://", messaging.ErrInvalidURL},
		{"amqp://guest:guest@:5672/", messaging.ErrInvalidURL},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		c, err := messaging.Open(ctx, tc.url)
		cancel()
		if err == nil {
			_ = c.Close()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%s): %v, want %v", tc.url, err, tc.want)
		}
	}
}
