package memory_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// logLines is an io.Writer for a slog.TextHandler that sends each record
// (one Write) to a channel, dropping it when the channel is full.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

// TestGivenUpAfterAckDeadlineIsLogged: with MaxAttempts(1), a message whose
// only delivery expired (its consumer crashed) is given up, not delivered
// again, and the fetching client logs it with its ID: a message the group
// loses is never lost silently.
func TestGivenUpAfterAckDeadlineIsLogged(t *testing.T) {
	const (
		topic    = "given-up-logged"
		deadline = 200 * time.Millisecond
	)
	b, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	crashed := mustNewClient(t, b)
	lines := make(logLines, 16)
	survivor, err := b.NewClient(memory.WithLogger(slog.New(slog.NewTextHandler(lines, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = survivor.Close() })
	opts := []messaging.SubscribeOption{messaging.Group("g"), messaging.MaxAttempts(1), messaging.AckDeadline(deadline)}

	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	sub, err := crashed.Subscribe(ctx, topic, func(ctx context.Context, _ *messaging.Message) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = sub.Close()
		_ = crashed.Close()
	})
	if err := crashed.Publish(t.Context(), topic, &messaging.Message{ID: "doomed", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first consumer never got the message")
	}
	crashed.Kill()

	got := deliveries(t, survivor, topic, 1, opts...)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-lines:
			if strings.Contains(line, "giving up") && strings.Contains(line, "id=doomed") {
				return
			}
		case m := <-got:
			t.Fatalf("message %s delivered again with Attempt %d after its only attempt (MaxAttempts 1) expired, want it given up and logged", m.ID, m.Attempt)
		case <-timeout:
			t.Fatal("the message whose only attempt expired was not logged as given up within 10s")
		}
	}
}
