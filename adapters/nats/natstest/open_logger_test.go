package natstest_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// recordingHandler is a slog.Handler that keeps every record's message and
// sends it on msgs when there is room.
type recordingHandler struct {
	mu   *sync.Mutex
	seen *[]string
	msgs chan string
}

func newRecordingHandler() recordingHandler {
	return recordingHandler{mu: &sync.Mutex{}, seen: new([]string), msgs: make(chan string, 64)}
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.seen = append(*h.seen, r.Message)
	h.mu.Unlock()
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h recordingHandler) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), *h.seen...)
}

// TestOpenLoggerNotDefault: a logger given to messaging.Open gets what the
// NATS adapter logs (here a core-mode message dropped after its handler
// failed), and slog's default logger gets nothing.
func TestOpenLoggerNotDefault(t *testing.T) {
	def := newRecordingHandler()
	old := slog.Default()
	slog.SetDefault(slog.New(def))
	defer slog.SetDefault(old)

	given := newRecordingHandler()
	ctx := t.Context()
	c, err := messaging.Open(ctx, natstest.Broker.Endpoint(t)+"?mode=core", messaging.WithLogger(slog.New(given)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := integration.UniqueName(t, "openlogger")
	sub, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error {
		return errors.New("fails")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(ctx, topic, &messaging.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for logged := false; !logged; {
		select {
		case m := <-given.msgs:
			logged = strings.Contains(m, "dropped")
		case <-timeout:
			t.Fatalf("the dropped message was not logged to the given logger (got %q)", given.all())
		}
	}
	if got := def.all(); len(got) > 0 {
		t.Fatalf("slog's default logger got %q", got)
	}
}
