package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
)

// TopicExists reports whether topic has been declared on the broker (its
// exchange, and with streams its stream queue), without declaring anything:
// Publish, Subscribe, Read and Provision declare what is missing. Inspection
// tools use it to stay read-only.
func (c *Client) TopicExists(ctx context.Context, topic string) (bool, error) {
	if c.closed.Load() {
		return false, fmt.Errorf("rabbitmq: topic exists: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return false, fmt.Errorf("rabbitmq: topic exists: %w", err)
	}
	ch, _, err := c.conn.channel(ctx)
	if err != nil {
		return false, fmt.Errorf("rabbitmq: topic exists %s: %w", topic, err)
	}
	// A failed passive declare closes the channel; Close then only returns
	// an error, which does not matter here.
	defer func() { _ = ch.Close() }()
	if c.cfg.streams {
		_, err = ch.QueueDeclarePassive(streamQueue(topic), true, false, false, false, amqp.Table{"x-queue-type": "stream"})
	} else {
		err = ch.ExchangeDeclarePassive(topic, amqp.ExchangeTopic, true, false, false, false, nil)
	}
	var ae *amqp.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return false, nil
	}
	return false, fmt.Errorf("rabbitmq: topic exists %s: %w", topic, err)
}
