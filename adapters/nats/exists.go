package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// TopicExists reports whether topic has a JetStream stream, without creating
// one (Read, Subscribe and Publish create a missing stream). Inspection tools
// use it to stay read-only. In core mode it fails with ErrUnsupported.
func (c *Client) TopicExists(ctx context.Context, topic string) (bool, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "topic exists", topic); err != nil {
		return false, err
	}
	if c.cfg.mode == ModeCore {
		return false, fmt.Errorf("nats: topic exists: core NATS keeps no streams: %w", messaging.ErrUnsupported)
	}
	var exists bool
	err := c.whileUnreachable(ctx, "topic exists", func(ctx context.Context) error {
		var err error
		exists, err = c.topicExists(ctx, topic)
		return err
	})
	return exists, err
}

// topicExists is TopicExists after its checks, in JetStream mode.
func (c *Client) topicExists(ctx context.Context, topic string) (bool, error) {
	if c.cfg.bindStreams {
		_, err := c.js.StreamNameBySubject(ctx, topic)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	_, err := c.js.Stream(ctx, c.StreamName(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("nats: topic exists: %w", err)
	}
	return true, nil
}
