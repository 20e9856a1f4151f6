package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
)

// recordHandler is a slog.Handler that sends every record, with its
// attributes as "key=value" strings, to a channel.
type recordHandler struct{ out chan<- string }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	line := fmt.Sprintf("level=%v msg=%q", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	select {
	case h.out <- line:
	default:
	}
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// TestGivenUpMessageLogged: a message the engine gives up (a Permanent
// error, or a failure at the last of MaxAttempts) is logged at Warn,
// naming the message's ID, its topic, group and attempt and the
// handler's error, for the operator to find what was dropped (the
// messages are acknowledged: no dead letter keeps them).
func TestGivenUpMessageLogged(t *testing.T) {
	f := &fake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 16), onSettle: make(chan driver.Settlement, 64)}
	lines := make(chan string, 64)
	c := engine.New(f, engine.Options{Name: "fake", Logger: slog.New(recordHandler{lines})})
	defer c.Close()
	sub, err := c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
		if m.ID == "permanent" {
			return messaging.Permanent(errors.New("cannot parse"))
		}
		return errors.New("still failing")
	}, messaging.Group("g"), messaging.MaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	f.in <- &messaging.Message{ID: "permanent", Attempt: 1}
	f.in <- &messaging.Message{ID: "exhausted", Attempt: 3}
	want := map[string][]string{
		"permanent": {"level=WARN", "id=permanent", "topic=t", "group=g", "attempt=1", "cannot parse"},
		"exhausted": {"level=WARN", "id=exhausted", "topic=t", "group=g", "attempt=3", "still failing"},
	}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case line := <-lines:
			for id, parts := range want {
				if !strings.Contains(line, "id="+id+" ") {
					continue
				}
				for _, p := range parts {
					if !strings.Contains(line, p) {
						t.Errorf("the log of given-up message %s lacks %q: %s", id, p, line)
					}
				}
				delete(want, id)
			}
		case <-timeout:
			t.Fatalf("no log naming the given-up messages %v within 10s", want)
		}
	}
}
