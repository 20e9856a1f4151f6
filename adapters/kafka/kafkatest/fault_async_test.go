package kafkatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestPublishAsyncWhileCut: with the network to the cluster cut, messages
// given to PublishAsync each fail once with messaging.ErrUnavailable,
// within a few seconds in all (unavailable_timeout 1s); once the network is
// back, PublishAsync works again on the same client.
func TestPublishAsyncWhileCut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private cluster")
	}
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, privateURL(k)+"&unavailable_timeout=1s", true)
	topic := integration.UniqueName(t, "cut")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	k.Cut()
	fault.PublishAsyncWhileUnreachable(t, c, topic)
	k.Restore()
	result := make(chan error, 1)
	c.PublishAsync(ctx, topic, &messaging.Message{ID: "after"}, func(_ *messaging.Message, err error) { result <- err })
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatalf("PublishAsync after the cut: %v", err)
	}
}
