package memory_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

// TestPublishEndedContextNamesTopic: Publish and PublishAsync with a
// context that has already ended fail with an error that wraps ctx's and
// names the topic, as the other adapters' do ("nats: publish to X:
// context canceled").
func TestPublishEndedContextNamesTopic(t *testing.T) {
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	const topic = "ended-ctx-publish"
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(call string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "memory: publish to "+topic+": ") {
			t.Errorf("%s with an ended context: %v, want an error naming topic %s and wrapping context.Canceled", call, err, topic)
		}
	}
	check("Publish", c.Publish(ctx, topic, messaging.NewMessage([]byte("x"))))
	var asyncErr error
	c.PublishAsync(ctx, topic, messaging.NewMessage([]byte("y")), func(_ *messaging.Message, err error) { asyncErr = err })
	check("PublishAsync", asyncErr)
}
