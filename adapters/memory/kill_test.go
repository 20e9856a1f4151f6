package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// TestKilledClientSettlesNothing: the outcome of a handler that returns
// after its client was killed is ignored (Kill simulates a crash), so its
// message is redelivered to the group's other member once its
// AckDeadline passes, with Attempt 2, though the handler succeeded.
func TestKilledClientSettlesNothing(t *testing.T) {
	const topic = "killed-settles-nothing"
	b, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	crashed, survivor := mustNewClient(t, b), mustNewClient(t, b)
	t.Cleanup(func() { _ = survivor.Close() })
	opts := []messaging.SubscribeOption{messaging.Group("g"), messaging.AckDeadline(200 * time.Millisecond)}
	started, finish := make(chan struct{}, 1), make(chan struct{})
	sub, err := crashed.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error {
		started <- struct{}{}
		<-finish
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Publish(t.Context(), topic, &messaging.Message{ID: "held"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first consumer never got the message")
	}
	crashed.Kill()
	close(finish)
	// Close waits for the handler and settles its success, which the
	// killed client must drop.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_ = crashed.Close()

	got := deliveries(t, survivor, topic, 1, opts...)
	select {
	case m := <-got:
		if m.ID != "held" || m.Attempt != 2 {
			t.Errorf("redelivered %s with Attempt %d, want held with Attempt 2", m.ID, m.Attempt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message a killed client's handler finished was not redelivered within 10s: its acknowledgement was applied")
	}
}
