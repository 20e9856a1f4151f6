package nats

import (
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestRetryableWithinDuplicateWindow: a PublishAsync message in flight when
// the connection dropped is sent again only when the stream's duplicate
// window outlasts the unavailable timeout (within which it is sent again),
// so that the stream drops the copy it may hold: with the server's default
// window (2m, WithDuplicateWindow unset) too.
func TestRetryableWithinDuplicateWindow(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		want bool
	}{
		{nil, true}, // 5s within the server's 2m
		{[]Option{WithUnavailableTimeout(3 * time.Minute)}, false},
		{[]Option{WithUnavailableTimeout(3 * time.Minute), WithDuplicateWindow(5 * time.Minute)}, true},
		{[]Option{WithDuplicateWindow(time.Second)}, false},
	} {
		cfg, err := newConfig(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		c := &Client{cfg: cfg}
		a := &asyncMsg{msg: &messaging.Message{ID: "id"}}
		if got := c.retryable(a); got != tc.want {
			t.Errorf("unavailable timeout %v, duplicate window %v: retryable %v, want %v", cfg.unavailable, cfg.duplicates, got, tc.want)
		}
	}
}
