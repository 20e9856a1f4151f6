package messaging_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// chanHandler is a slog.Handler that sends every record's message on a
// channel.
type chanHandler struct{ msgs chan<- string }

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default: // nobody waits for it
	}
	return nil
}
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h chanHandler) WithGroup(string) slog.Handler      { return h }

// TestOpenWithLoggerReachesAdapter: the logger given to Open is the one the
// adapter logs a given-up message to (a handler's Permanent error).
func TestOpenWithLoggerReachesAdapter(t *testing.T) {
	ctx := t.Context()
	msgs := make(chan string, 16)
	c, err := messaging.Open(ctx, "mem://open-with-logger", messaging.WithLogger(slog.New(chanHandler{msgs})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "open-with-logger", func(context.Context, *messaging.Message) error {
		return messaging.Permanent(errors.New("not for me"))
	}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(ctx, "open-with-logger", &messaging.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.Contains(m, "not redelivered") {
				return
			}
		case <-timeout:
			t.Fatal("the given-up message was not logged to the logger given to Open")
		}
	}
}

func TestOpenWithLoggerNil(t *testing.T) {
	for name, open := range map[string]func() error{
		"Open": func() error {
			_, err := messaging.Open(t.Context(), "mem://open-nil-logger", messaging.WithLogger(nil))
			return err
		},
		"OpenConfig": func() error {
			_, err := messaging.OpenConfig(t.Context(), messaging.Config{URL: "mem://open-nil-logger"}, messaging.WithLogger(nil))
			return err
		},
	} {
		err := open()
		if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "WithLogger") {
			t.Errorf("%s with WithLogger(nil): %v, want ErrInvalidOption naming WithLogger", name, err)
		}
	}
}

// TestNilOptionsIgnored: a nil option is ignored by Open, OpenConfig and
// Subscribe (see the package doc), and the options after it still apply.
func TestNilOptionsIgnored(t *testing.T) {
	c, err := messaging.Open(t.Context(), "mem://open-nil-option", nil)
	if err != nil {
		t.Fatalf("Open with a nil option: %v", err)
	}
	defer c.Close()
	c2, err := messaging.OpenConfig(t.Context(), messaging.Config{URL: "mem://open-nil-option"}, nil)
	if err != nil {
		t.Fatalf("OpenConfig with a nil option: %v", err)
	}
	c2.Close()
	if _, err := messaging.Open(t.Context(), "mem://open-nil-option", nil, messaging.WithLogger(nil)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("Open(nil, WithLogger(nil)) = %v, want ErrInvalidOption", err)
	}
	sub, err := c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil }, nil, messaging.Group("g"))
	if err != nil {
		t.Fatalf("Subscribe with a nil option: %v", err)
	}
	sub.Close()
	o, err := messaging.NewSubscribeOptions(1, nil, messaging.Group("g"))
	if err != nil || o.Group != "g" {
		t.Errorf("NewSubscribeOptions(nil, Group(g)) = %+v, %v; want group g", o, err)
	}
	if _, err := messaging.NewSubscribeOptions(1, nil, messaging.Concurrency(0)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("NewSubscribeOptions(nil, Concurrency(0)) = %v, want ErrInvalidOption", err)
	}
}
