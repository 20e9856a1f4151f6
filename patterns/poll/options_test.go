package poll_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/poll"
)

func TestOptionsRejectInvalidValues(t *testing.T) {
	client, err := messaging.Open(t.Context(), "mem://poll-options")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	src := poll.SourceFunc[Ticket](func(context.Context, string, string) (poll.Page[Ticket], error) {
		return poll.Page[Ticket]{}, nil
	})
	for _, tc := range []struct {
		option string
		opts   []poll.Option
	}{
		{"WithStore", []poll.Option{poll.WithStore(nil)}},
		{"WithInterval", []poll.Option{poll.WithInterval(0)}},
		{"WithInterval", []poll.Option{poll.WithInterval(-time.Second)}},
		{"WithMaxInterval", []poll.Option{poll.WithMaxInterval(0)}},
		{"WithMaxInterval", []poll.Option{poll.WithMaxInterval(-time.Second)}},
		{"WithMaxInterval", []poll.Option{poll.WithInterval(time.Minute), poll.WithMaxInterval(time.Second)}},
		{"WithJitter", []poll.Option{poll.WithJitter(-0.5)}},
		{"WithJitter", []poll.Option{poll.WithJitter(2)}},
		{"WithJitter", []poll.Option{poll.WithJitter(math.NaN())}},
		{"WithSeen", []poll.Option{poll.WithSeen(nil)}},
		{"WithSeenTTL", []poll.Option{poll.WithSeenTTL(0)}},
		{"WithSeenTTL", []poll.Option{poll.WithSeenTTL(-time.Hour)}},
		{"WithCodec", []poll.Option{poll.WithCodec(nil)}},
		{"WithLogger", []poll.Option{poll.WithLogger(nil)}},
	} {
		p, err := poll.New[Ticket]("options", src, client, "tickets", tc.opts...)
		if !errors.Is(err, messaging.ErrInvalidOption) || p != nil {
			t.Errorf("%s: New = %v, %v; want an ErrInvalidOption", tc.option, p, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "poll: "+tc.option+"(") {
			t.Errorf("%s: error %q does not start with poll: %s(", tc.option, err, tc.option)
		}
	}
	ok := []poll.Option{nil, poll.WithStore(&checkpoint.Memory{}), poll.WithInterval(time.Second), poll.WithMaxInterval(time.Second)}
	if _, err := poll.New[Ticket]("options", src, client, "tickets", ok...); err != nil {
		t.Errorf("valid options: %v", err)
	}
}
