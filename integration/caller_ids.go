package integration

import (
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// PublishWithoutIDs is the publishing half of an adapter's test of a mode
// in which Publish assigns no ID (Capabilities.PublishAssignsID false, as
// core NATS, or ids=caller on JetStream, Redis and Kafka): it fails the test if c
// claims PublishAssignsID, publishes a payload-only message "bare" with
// Publish and another, "async", with PublishAsync (when c is an
// AsyncPublisher), and checks that both were left without ID and Time.
// The caller then checks what the broker stored and what consumers get.
func PublishWithoutIDs(t testing.TB, c messaging.Client, topic string) {
	t.Helper()
	if c.Capabilities().PublishAssignsID {
		t.Fatal("integration: PublishAssignsID claimed")
	}
	bare := &messaging.Message{Payload: []byte("bare")}
	if err := c.Publish(t.Context(), topic, bare); err != nil {
		t.Fatal(err)
	}
	if bare.ID != "" || !bare.Time.IsZero() {
		t.Fatalf("integration: Publish set ID %q, Time %v", bare.ID, bare.Time)
	}
	ap, ok := c.(messaging.AsyncPublisher)
	if !ok {
		return
	}
	async := &messaging.Message{Payload: []byte("async")}
	if err := publishAsyncResult(t.Context(), ap, topic, async); err != nil {
		t.Fatal(err)
	}
	if async.ID != "" || !async.Time.IsZero() {
		t.Fatalf("integration: PublishAsync set ID %q, Time %v", async.ID, async.Time)
	}
}

// ConsumeEarliest subscribes group "g" to topic from its earliest message,
// waits until n distinct messages were handled (at most 30s) and returns
// them: the consuming half of a caller-ID test, which then checks each
// message's ID and Time.
func ConsumeEarliest(t testing.TB, c messaging.Client, topic string, n int) []*messaging.Message {
	t.Helper()
	got := NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, got.Handler(), messaging.Group("g"), messaging.StartAt(messaging.Earliest))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	got.WaitDistinct(t, n, 30*time.Second)
	return got.Messages()
}
