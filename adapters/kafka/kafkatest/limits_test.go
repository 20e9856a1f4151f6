package kafkatest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestBrokerRecordLimit: with the adapter's limit raised above the
// broker's message.max.bytes, a record the broker refuses fails with
// ErrMessageTooLarge too.
func TestBrokerRecordLimit(t *testing.T) {
	c := kafkatest.Open(t, "max_message_size=4MiB")
	topic := integration.UniqueName(t, "limit")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	err := c.Publish(t.Context(), topic, messaging.NewMessage(make([]byte, 2<<20)))
	if !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Fatalf("2 MiB record: %v, want ErrMessageTooLarge", err)
	}
	t.Log(err)
}
