package dispatch

import (
	"fmt"

	"github.com/msgkit/messaging"
)

// SubscribeArgs checks the arguments of Consumer.Subscribe the same way for
// every adapter (closed client, topic name, nil handler, options) and
// resolves the options with the adapter's default prefetch.
func SubscribeArgs(closed bool, topic string, h messaging.Handler, defaultPrefetch int, opts []messaging.SubscribeOption) (messaging.SubscribeOptions, error) {
	return subscribeArgs("subscribe", closed, topic, h == nil, defaultPrefetch, opts)
}

func subscribeArgs(op string, closed bool, topic string, nilHandler bool, defaultPrefetch int, opts []messaging.SubscribeOption) (messaging.SubscribeOptions, error) {
	if closed {
		return messaging.SubscribeOptions{}, fmt.Errorf("messaging: %s: %w", op, messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return messaging.SubscribeOptions{}, fmt.Errorf("messaging: %s: topic: %w", op, err)
	}
	if nilHandler {
		return messaging.SubscribeOptions{}, fmt.Errorf("messaging: %s: nil handler: %w", op, messaging.ErrInvalidOption)
	}
	o, err := messaging.NewSubscribeOptions(defaultPrefetch, opts...)
	if err != nil {
		return messaging.SubscribeOptions{}, fmt.Errorf("messaging: %s: %w", op, err)
	}
	return o, nil
}

// ReadArgs checks the arguments of Stream.Read the same way for every
// adapter.
func ReadArgs(closed bool, topic string, from messaging.Position, h messaging.Handler) error {
	if closed {
		return fmt.Errorf("messaging: read: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("messaging: read: topic: %w", err)
	}
	if err := from.Validate(); err != nil {
		return fmt.Errorf("messaging: read: %w", err)
	}
	if h == nil {
		return fmt.Errorf("messaging: read: nil handler: %w", messaging.ErrInvalidOption)
	}
	return nil
}
