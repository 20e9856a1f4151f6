package redis_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/internal/mwtest"
)

// unconnected is a go-redis client that New never contacts (nothing
// listens on port 1).
func unconnected(t *testing.T) goredis.UniversalClient {
	rc := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// wantInvalid is mwtest.WantInvalid without the prefix check: option errors
// and URL parameter errors reach the tests with different prefixes.
func wantInvalid(t *testing.T, what string, err error, names ...string) {
	t.Helper()
	mwtest.WantInvalid(t, "", what, err, names...)
}

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New fail with ErrInvalidOption naming the option, before any I/O.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []redisadapter.Option
	}{
		{"WithUnavailableTimeout", []redisadapter.Option{redisadapter.WithUnavailableTimeout(0), redisadapter.WithUnavailableTimeout(-time.Second)}},
		{"WithMaxLen", []redisadapter.Option{redisadapter.WithMaxLen(-1)}},
		{"WithMaxAge", []redisadapter.Option{redisadapter.WithMaxAge(-time.Second)}},
		{"WithMaxMessageSize", []redisadapter.Option{redisadapter.WithMaxMessageSize(-1)}},
		{"WithBlock", []redisadapter.Option{redisadapter.WithBlock(0), redisadapter.WithBlock(-time.Second)}},
		{"WithDeadLetterSuffix", []redisadapter.Option{
			redisadapter.WithDeadLetterSuffix(".dlq."), redisadapter.WithDeadLetterSuffix("..dlq"),
			redisadapter.WithDeadLetterSuffix(" dlq"), redisadapter.WithDeadLetterSuffix(":dlq"),
			redisadapter.WithDeadLetterSuffix(strings.Repeat("d", messaging.MaxNameLength)),
		}},
		{"WithStaleConsumerAfter", []redisadapter.Option{redisadapter.WithStaleConsumerAfter(0), redisadapter.WithStaleConsumerAfter(-time.Second)}},
		{"WithLogger", []redisadapter.Option{redisadapter.WithLogger(nil)}},
		{"WithCoalescing", []redisadapter.Option{redisadapter.WithCoalescing(-1)}},
	} {
		for i, o := range tc.bad {
			c, err := redisadapter.New(unconnected(t), o)
			if c != nil {
				t.Errorf("%s #%d: New returned a client with the error %v", tc.name, i, err)
			}
			wantInvalid(t, tc.name, err, tc.name)
		}
	}
}

// TestOptionsValid: valid values, the zero values that mean "off", and a
// later option overriding an earlier one are accepted.
func TestOptionsValid(t *testing.T) {
	c, err := redisadapter.New(unconnected(t),
		redisadapter.WithUnavailableTimeout(time.Millisecond),
		redisadapter.WithPrefix(""), redisadapter.WithPrefix("app:{x}"),
		redisadapter.WithHashTag(true),
		redisadapter.WithMaxLen(0), redisadapter.WithMaxLen(10),
		redisadapter.WithMaxAge(0),
		redisadapter.WithMaxMessageSize(0),
		redisadapter.WithBlock(time.Millisecond),
		redisadapter.WithDeadLetterSuffix(".dlq"), redisadapter.WithDeadLetterSuffix("-dead_letters"), redisadapter.WithDeadLetterSuffix(""),
		redisadapter.WithStaleConsumerAfter(time.Millisecond),
		redisadapter.WithLogger(slog.Default()),
		redisadapter.WithCoalescing(0),
		redisadapter.WithCloseClient(false),
		nil,
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Capabilities().NativeDeadLetter; got {
		t.Error("WithDeadLetterSuffix(\"\") after a suffix left dead-lettering on")
	}
	_ = c.Close()
}

// TestOptionsFirstErrorAndConflicts: the first invalid option's error is
// returned as is; WithMaxLen and WithMaxAge together are rejected naming
// both; a nil go-redis client is rejected.
func TestOptionsFirstErrorAndConflicts(t *testing.T) {
	_, err := redisadapter.New(unconnected(t), redisadapter.WithMaxLen(-1), redisadapter.WithBlock(0))
	wantInvalid(t, "two invalid options", err, "WithMaxLen")
	if strings.Contains(err.Error(), "WithBlock") {
		t.Errorf("two invalid options: %q, want the first one's error only", err)
	}
	_, err = redisadapter.New(unconnected(t), redisadapter.WithMaxLen(10), redisadapter.WithMaxAge(time.Hour))
	wantInvalid(t, "WithMaxLen with WithMaxAge", err, "WithMaxLen", "WithMaxAge")
	_, err = redisadapter.New(unconnected(t), redisadapter.WithMaxLen(10), redisadapter.WithMaxAge(time.Hour), redisadapter.WithMaxLen(0))
	if err != nil {
		t.Errorf("WithMaxAge after WithMaxLen overridden by WithMaxLen(0): %v", err)
	}
	if _, err := redisadapter.New(nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("New(nil): %v, want ErrInvalidOption", err)
	}
}

// TestURLParametersRejectInvalidValues: Open fails on an invalid parameter
// value with ErrInvalidOption naming the parameter, before it dials (nothing
// listens on port 1: a dial would fail with another error).
func TestURLParametersRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct{ query, param string }{
		{"maxlen=-1", "maxlen"},
		{"maxlen=x", "maxlen"},
		{"max_age=-1s", "max_age"},
		{"max_message_size=-1", "max_message_size"},
		{"block=0s", "block"},
		{"dead_letter_suffix=..dlq", "dead_letter_suffix"},
		{"dead_letter_suffix=%20dlq", "dead_letter_suffix"},
		{"dead_letter=.dlq", "dead_letter"},
		{"stale_consumer_after=0s", "stale_consumer_after"},
		{"coalesce=-1", "coalesce"},
		{"unavailable_timeout=0s", "unavailable_timeout"},
		{"ids=none", "ids"},
		{"hash_tag=maybe", "hash_tag"},
		{"maxlen=10&max_age=1h", "max_age"},
	} {
		_, err := redisadapter.Open(t.Context(), "redis://127.0.0.1:1/?"+tc.query)
		wantInvalid(t, tc.query, err, tc.param)
	}
}
