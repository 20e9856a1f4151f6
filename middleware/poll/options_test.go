package poll_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/poll"
)

func noFetch(context.Context, string) ([]poll.Item, string, error) { return nil, "", nil }

func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		option string
		opts   []poll.Option
	}{
		{"WithInterval", []poll.Option{poll.WithInterval(0)}},
		{"WithInterval", []poll.Option{poll.WithInterval(-time.Second)}},
		{"WithMaxInterval", []poll.Option{poll.WithMaxInterval(0)}},
		{"WithMaxInterval", []poll.Option{poll.WithMaxInterval(-time.Second)}},
		{"WithMaxInterval", []poll.Option{poll.WithInterval(time.Minute), poll.WithMaxInterval(time.Second)}},
		{"WithMaxInterval", []poll.Option{poll.WithMaxInterval(time.Second), poll.WithInterval(time.Minute)}},
		{"WithMaxInterval", []poll.Option{poll.WithInterval(time.Second + 1), poll.WithMaxInterval(time.Second)}},
		{"WithJitter", []poll.Option{poll.WithJitter(-0.1)}},
		{"WithJitter", []poll.Option{poll.WithJitter(1.5)}},
		{"WithJitter", []poll.Option{poll.WithJitter(math.NaN())}},
		{"WithJitter", []poll.Option{poll.WithJitter(math.Inf(1))}},
		{"WithStore", []poll.Option{poll.WithStore(nil)}},
		{"WithSeen", []poll.Option{poll.WithSeen(nil)}},
		{"WithSeenTTL", []poll.Option{poll.WithSeenTTL(0)}},
		{"WithSeenTTL", []poll.Option{poll.WithSeenTTL(-time.Hour)}},
		{"WithLogger", []poll.Option{poll.WithLogger(nil)}},
	} {
		src, err := poll.NewSource(noFetch, tc.opts...)
		if !errors.Is(err, messaging.ErrInvalidOption) || src != nil {
			t.Errorf("%s: NewSource = %v, %v; want an ErrInvalidOption", tc.option, src, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "poll: "+tc.option+"(") {
			t.Errorf("%s: error %q does not start with poll: %s(", tc.option, err, tc.option)
		}
	}
}

func TestOptionsAcceptBoundaryValues(t *testing.T) {
	for name, opts := range map[string][]poll.Option{
		"none":                           nil,
		"nil option":                     {nil},
		"jitter 0":                       {poll.WithJitter(0)},
		"jitter 1":                       {poll.WithJitter(1)},
		"max interval equal to interval": {poll.WithInterval(time.Second), poll.WithMaxInterval(time.Second)},
		"interval above the default max": {poll.WithInterval(2 * poll.DefaultMaxInterval)},
	} {
		src, err := poll.NewSource(noFetch, opts...)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		_ = src.Close()
	}
}

func TestNewSourceRejectsNilFetch(t *testing.T) {
	if _, err := poll.NewSource(nil); !errors.Is(err, messaging.ErrInvalidOption) || !strings.HasPrefix(err.Error(), "poll: ") {
		t.Fatalf("NewSource(nil) = %v, want a poll: ErrInvalidOption", err)
	}
}
