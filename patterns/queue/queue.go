// Package queue is the work queue pattern: producers enqueue typed jobs on a
// topic; a pool of workers, all in one consumer group, shares them so that
// each job is handled by one worker (at-least-once: a job can run again after
// a crash, so handlers must be idempotent).
//
// Retries and dead-lettering are preconfigured: a failed job is redelivered
// after an exponential backoff (middleware/retry in broker mode, so attempts
// are counted by the broker where it can; in process on adapters without
// Groups, such as core NATS, where nothing redelivers), and a job that failed its last
// attempt, or failed with a messaging.Permanent error, is moved to the
// queue's dead-letter topic (middleware/deadletter; default topic + ".dlq")
// and acknowledged. Inspect and redrive dead letters with
// deadletter.NewQueue or `msgctl dlq`.
package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/patterns/codec"
)

// Queue enqueues jobs of type T on one topic. It is safe for concurrent use.
type Queue[T any] struct {
	pub   messaging.Publisher
	topic string
	codec codec.Codec
}

// New returns a Queue of T jobs on topic; pub is not owned by the Queue.
// Only WithCodec applies. A nil pub, an invalid topic or an option that does
// not apply is rejected with an error wrapping messaging.ErrInvalidOption;
// opts are applied in order and the first error is returned.
func New[T any](pub messaging.Publisher, topic string, opts ...Option) (*Queue[T], error) {
	if pub == nil {
		return nil, fmt.Errorf("queue: New: nil publisher: %w", messaging.ErrInvalidOption)
	}
	if err := optcheck.Topic("queue", "New", topic); err != nil {
		return nil, err
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	for name := range cfg.set {
		if name != "WithCodec" {
			return nil, fmt.Errorf("queue: New: %s does not apply here (Work only): %w", name, messaging.ErrInvalidOption)
		}
	}
	return &Queue[T]{pub: pub, topic: topic, codec: cfg.codec}, nil
}

// Topic is the queue's topic.
func (q *Queue[T]) Topic() string { return q.topic }

// Enqueue adds job to the queue and returns its message ID once the broker
// has accepted it. Jobs with the same non-empty key are handled in order, one
// at a time (where the adapter has PerKeyOrder). The ID is made here, so it
// is sent with the job also where Publish assigns none (core NATS, see
// messaging.Capabilities.PublishAssignsID).
func (q *Queue[T]) Enqueue(ctx context.Context, key string, job T) (string, error) {
	m, err := codec.Encode(q.codec, job)
	if err != nil {
		return "", err // it carries its prefix
	}
	m.Key, m.ID = key, driver.NewID()
	if err := q.pub.Publish(ctx, q.topic, m); err != nil {
		return "", fmt.Errorf("queue: enqueue on %s: %w", q.topic, err)
	}
	return m.ID, nil
}

// Option configures New and Work. An Option given an invalid value makes
// them fail with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	codec        codec.Codec
	workers      int
	maxAttempts  int
	initial      time.Duration
	maxBackoff   time.Duration
	dlTopic      string
	noDeadLetter bool
	mws          []messaging.Middleware
	subOpts      []messaging.SubscribeOption
	set          map[string]bool // the options given, by name
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (config, error) {
	c := config{codec: codec.JSON, workers: 4, maxAttempts: 5, initial: 100 * time.Millisecond, maxBackoff: 30 * time.Second, set: map[string]bool{}}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	if c.set["WithDeadLetterTopic"] && c.set["WithoutDeadLetter"] {
		return config{}, fmt.Errorf("queue: WithDeadLetterTopic(%s) and WithoutDeadLetter conflict: give one: %w", c.dlTopic, messaging.ErrInvalidOption)
	}
	return c, nil
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return optcheck.Invalid("queue", name, v, why)
}

// WithCodec sets the job codec (default codec.JSON). A nil c is invalid.
func WithCodec(c codec.Codec) Option {
	return func(cfg *config) error {
		if c == nil {
			return invalid("WithCodec", "nil", "needs a codec")
		}
		cfg.codec = c
		cfg.set["WithCodec"] = true
		return nil
	}
}

// WithWorkers sets how many jobs one Work call handles at once (default 4;
// at least 1).
func WithWorkers(n int) Option {
	return func(cfg *config) error {
		if n < 1 {
			return invalid("WithWorkers", n, "must be at least 1")
		}
		cfg.workers = n
		cfg.set["WithWorkers"] = true
		return nil
	}
}

// WithRetry sets the most attempts per job (default 5; at least 1; 1 means
// no retry) and the exponential backoff between them (default 100ms
// doubling up to 30s, with jitter; initial 0 means no delay, and max must
// not be below initial), as retry.WithMaxAttempts and retry.WithBackoff do.
func WithRetry(maxAttempts int, initial, max time.Duration) Option {
	return func(cfg *config) error {
		v := fmt.Sprintf("%d, %v, %v", maxAttempts, initial, max)
		switch {
		case maxAttempts < 1:
			return invalid("WithRetry", v, "maxAttempts must be at least 1")
		case initial < 0:
			return invalid("WithRetry", v, "initial must not be negative")
		case max < initial:
			return invalid("WithRetry", v, "max must not be below initial")
		}
		cfg.maxAttempts, cfg.initial, cfg.maxBackoff = maxAttempts, initial, max
		cfg.set["WithRetry"] = true
		return nil
	}
}

// WithDeadLetterTopic sets the dead-letter topic (default
// DeadLetterTopic(topic)); it must be a valid name. It conflicts with
// WithoutDeadLetter.
func WithDeadLetterTopic(topic string) Option {
	return func(cfg *config) error {
		if err := messaging.ValidateName(topic); err != nil {
			return invalid("WithDeadLetterTopic", fmt.Sprintf("%q", topic), err.Error())
		}
		cfg.dlTopic = topic
		cfg.set["WithDeadLetterTopic"] = true
		return nil
	}
}

// WithoutDeadLetter disables dead-lettering: a job that failed its last
// attempt is dropped (acknowledged) after the adapter logs it. It conflicts
// with WithDeadLetterTopic.
func WithoutDeadLetter() Option {
	return func(cfg *config) error {
		cfg.noDeadLetter = true
		cfg.set["WithoutDeadLetter"] = true
		return nil
	}
}

// WithMiddleware adds middleware around the job handler, inside the queue's
// own retry and dead-letter layers (outermost first). Nil middleware is
// invalid. The queue checks the whole chain's order with
// middleware.Validate when it starts: each middleware is called once then
// with an empty probe message (middleware.IsProbe reports true for its
// context), and should only call the next handler.
func WithMiddleware(mws ...messaging.Middleware) Option {
	return func(cfg *config) error {
		if err := optcheck.Middleware("queue", mws); err != nil {
			return err
		}
		cfg.mws = append(cfg.mws, mws...)
		cfg.set["WithMiddleware"] = true
		return nil
	}
}

// WithSubscribeOptions passes options to the underlying Subscribe
// (AckDeadline, Prefetch...). Group and Concurrency come from Work. Nil
// options are ignored.
func WithSubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(cfg *config) error {
		cfg.subOpts = append(cfg.subOpts, opts...)
		cfg.set["WithSubscribeOptions"] = true
		return nil
	}
}

// Work runs handler on the jobs of topic with the configured number of
// workers, as consumer group group (every Work call with the same group, in
// any process, shares the jobs), until ctx is done or the Subscription is
// closed. c publishes the dead letters; Work provisions the dead-letter topic
// with a consumer group of the same name, which keeps them until read (see
// messaging.Provisioner). A job whose payload does not decode,
// or whose handler returns a messaging.Permanent error, is dead-lettered at
// once without retry. A nil c or handler is rejected with an error wrapping
// messaging.ErrInvalidOption; opts are applied in order and the first error
// is returned.
func Work[T any](ctx context.Context, c messaging.Client, topic, group string, handler func(ctx context.Context, job T, m *messaging.Message) error, opts ...Option) (messaging.Subscription, error) {
	if c == nil {
		return nil, fmt.Errorf("queue: Work: nil client: %w", messaging.ErrInvalidOption)
	}
	if handler == nil {
		return nil, fmt.Errorf("queue: Work: nil handler: %w", messaging.ErrInvalidOption)
	}
	if err := optcheck.Topic("queue", "Work", topic); err != nil {
		return nil, err
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	h, dlTopic, err := cfg.chain(c, topic, codec.Handler(cfg.codec, handler))
	if err != nil {
		return nil, err
	}
	if dlTopic != "" {
		// Brokers that route only to existing queues (RabbitMQ) would refuse
		// a dead letter, and with it the acknowledgement, until someone
		// subscribed: keep them in a group named like the topic.
		if err := messaging.Provision(ctx, c, dlTopic, dlTopic); err != nil {
			return nil, fmt.Errorf("queue: provision dead-letter topic %s: %w", dlTopic, err)
		}
	}
	subOpts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...),
		messaging.Group(group), messaging.Concurrency(cfg.workers))
	sub, err := c.Subscribe(ctx, topic, h, subOpts...)
	if err != nil {
		return nil, fmt.Errorf("queue: work %s as %s: %w", topic, group, err)
	}
	return sub, nil
}
