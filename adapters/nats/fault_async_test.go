package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestPublishAsyncWhileServerDown: with the server gone, messages given to
// PublishAsync each fail once with messaging.ErrUnavailable, within a few
// seconds in all (the 1s unavailable_timeout applies to the outage, not to
// each message in turn); after the server is back, PublishAsync works again
// on the same client. In both modes.
func TestPublishAsyncWhileServerDown(t *testing.T) {
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := fault.StartNATS(t)
			c := integration.OpenNATSURL(t, srv.URL()+"?reconnect_wait=100ms&unavailable_timeout=1s", natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "down")
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			srv.Kill()
			fault.PublishAsyncWhileUnreachable(t, c, topic)
			srv.Start()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			result := make(chan error, 1)
			c.PublishAsync(ctx, topic, &messaging.Message{ID: "after"}, func(_ *messaging.Message, err error) { result <- err })
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-result; err != nil {
				t.Fatalf("PublishAsync after the restart: %v", err)
			}
		})
	}
}
