// Package pubsub is the event bus pattern: a publisher announces typed events
// on a topic once; every subscriber, each its own consumer group, reacts to
// every event independently. Adding or removing a subscriber changes nothing
// on the publishing side.
//
// Each subscriber is a named, durable group (on persistent adapters): events
// published while it is down are delivered when it comes back, and several
// instances of the same subscriber share its events as a work queue.
// Delivery is at-least-once; subscribers must tolerate duplicates (the event
// ID is stable across redeliveries).
package pubsub

import (
	"cmp"
	"context"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/patterns/codec"
)

// Option configures a Publisher or a Subscribe call. An Option given an
// invalid value makes NewPublisher or Subscribe fail with an error wrapping
// messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	codec   codec.Codec
	subOpts []messaging.SubscribeOption
	mws     []messaging.Middleware
	subOnly string // the first Subscribe-only option given
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (config, error) {
	c := config{codec: codec.JSON}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// WithCodec sets the codec (default codec.JSON). Publisher and subscribers
// of one topic must agree. A nil c is invalid.
func WithCodec(c codec.Codec) Option {
	return func(cfg *config) error {
		if c == nil {
			return optcheck.Invalid("pubsub", "WithCodec", "nil", "needs a codec")
		}
		cfg.codec = c
		return nil
	}
}

// WithSubscribeOptions passes options (Concurrency, MaxAttempts, ...) to the
// underlying Subscribe. A Group option is overridden by the subscriber name.
// Nil options are ignored. Subscribe only.
func WithSubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(cfg *config) error {
		cfg.subOpts = append(cfg.subOpts, opts...)
		cfg.subOnly = cmp.Or(cfg.subOnly, "WithSubscribeOptions")
		return nil
	}
}

// WithMiddleware wraps a subscriber's handler (outermost first). Nil
// middleware is invalid. Subscribe only.
func WithMiddleware(mws ...messaging.Middleware) Option {
	return func(cfg *config) error {
		if err := optcheck.Middleware("pubsub", mws); err != nil {
			return err
		}
		cfg.mws = append(cfg.mws, mws...)
		cfg.subOnly = cmp.Or(cfg.subOnly, "WithMiddleware")
		return nil
	}
}

// Publisher publishes events of type T to one topic. It is safe for
// concurrent use.
type Publisher[T any] struct {
	pub   messaging.Publisher
	topic string
	cfg   config
}

// NewPublisher returns a Publisher of T events on topic. It does not own pub:
// closing pub is the caller's business. Only WithCodec applies. A nil pub,
// an invalid topic or an option that does not apply is rejected with an
// error wrapping messaging.ErrInvalidOption; opts are applied in order and
// the first error is returned.
func NewPublisher[T any](pub messaging.Publisher, topic string, opts ...Option) (*Publisher[T], error) {
	if pub == nil {
		return nil, fmt.Errorf("pubsub: NewPublisher: nil publisher: %w", messaging.ErrInvalidOption)
	}
	if err := optcheck.Topic("pubsub", "NewPublisher", topic); err != nil {
		return nil, err
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.subOnly != "" {
		return nil, fmt.Errorf("pubsub: NewPublisher: %s does not apply here (Subscribe only): %w", cfg.subOnly, messaging.ErrInvalidOption)
	}
	return &Publisher[T]{pub: pub, topic: topic, cfg: cfg}, nil
}

// Topic is the topic events are published to.
func (p *Publisher[T]) Topic() string { return p.topic }

// Publish sends one event and returns its message ID once the broker has
// accepted it. key, when not empty, orders events with the same key (where
// the adapter has PerKeyOrder). The ID is made here, so it is sent with the
// event also where Publish assigns none (core NATS, see
// messaging.Capabilities.PublishAssignsID).
func (p *Publisher[T]) Publish(ctx context.Context, key string, event T) (string, error) {
	m, err := codec.Encode(p.cfg.codec, event)
	if err != nil {
		return "", err // it carries its prefix
	}
	m.Key, m.ID = key, driver.NewID()
	if err := p.pub.Publish(ctx, p.topic, m); err != nil {
		return "", fmt.Errorf("pubsub: publish to %s: %w", p.topic, err)
	}
	return m.ID, nil
}

// Subscribe makes subscriber (a consumer group name) receive every event on
// topic from now on, and also the ones published while it was away once it
// exists (its group starts at Earliest when first created). h's error has
// the meaning of a messaging.Handler's; an event that does not decode is
// dropped as a Permanent error. A nil c or h is rejected with an error
// wrapping messaging.ErrInvalidOption; opts are applied in order and the
// first error is returned.
func Subscribe[T any](ctx context.Context, c messaging.Consumer, topic, subscriber string, h codec.Func[T], opts ...Option) (messaging.Subscription, error) {
	if c == nil {
		return nil, fmt.Errorf("pubsub: Subscribe: nil consumer: %w", messaging.ErrInvalidOption)
	}
	if h == nil {
		return nil, fmt.Errorf("pubsub: Subscribe: nil handler: %w", messaging.ErrInvalidOption)
	}
	if err := optcheck.Topic("pubsub", "Subscribe", topic); err != nil {
		return nil, err
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	handler := messaging.Chain(codec.Handler(cfg.codec, h), cfg.mws...)
	subOpts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...), messaging.Group(subscriber))
	sub, err := c.Subscribe(ctx, topic, handler, subOpts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe %s to %s: %w", subscriber, topic, err)
	}
	return sub, nil
}
