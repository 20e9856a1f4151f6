package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging/driver"
)

// TopicExists reports whether topic has been declared on the broker (its
// exchange, and with streams its stream queue), without declaring anything:
// Publish, Subscribe, Read and Provision declare what is missing. Inspection
// tools use it to stay read-only. It is bounded as Provision is: it
// returns when ctx ends, and fails with an error wrapping
// messaging.ErrUnavailable when no connection comes within
// unavailable_timeout (the broker unreachable), the broker has blocked
// the connection (a resource alarm) for that long, or it has answered
// nothing for that long (a silent broker).
func (c *Client) TopicExists(ctx context.Context, topic string) (bool, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "topic exists", topic); err != nil {
		return false, err
	}
	var exists bool
	err := c.conn.channelBounded(ctx, time.Now(), topic, func(ch *amqp.Channel, _ uint64, _ *blockWatch) error {
		// A failed passive declare closes the channel; Close then only
		// returns an error, which does not matter here.
		defer func() { _ = ch.Close() }()
		var err error
		if c.cfg.streams {
			_, err = ch.QueueDeclarePassive(streamQueue(topic), true, false, false, false, amqp.Table{"x-queue-type": "stream"})
		} else {
			err = ch.ExchangeDeclarePassive(topic, amqp.ExchangeTopic, true, false, false, false, nil)
		}
		var ae *amqp.Error
		switch {
		case err == nil:
			exists = true
		case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		default:
			return err
		}
		return nil
	}, nil)
	if err != nil {
		return false, fmt.Errorf("rabbitmq: topic exists %s: %w", topic, err)
	}
	return exists, nil
}
