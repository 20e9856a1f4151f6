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
	"github.com/msgkit/messaging/internal/prepare"
	"github.com/msgkit/messaging/patterns/codec"
)

// Queue enqueues jobs of type T on one topic. It is safe for concurrent use.
type Queue[T any] struct {
	pub   messaging.Publisher
	topic string
	codec codec.Codec
}

// New returns a Queue of T jobs on topic; pub is not owned by the Queue.
// Only WithCodec applies.
func New[T any](pub messaging.Publisher, topic string, opts ...Option) (*Queue[T], error) {
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	cfg := newConfig(opts)
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
		return "", fmt.Errorf("queue: %w", err)
	}
	m.Key, m.ID = key, prepare.NewID()
	if err := q.pub.Publish(ctx, q.topic, m); err != nil {
		return "", fmt.Errorf("queue: enqueue on %s: %w", q.topic, err)
	}
	return m.ID, nil
}

// Option configures New and Work.
type Option func(*config)

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
}

func newConfig(opts []Option) config {
	c := config{codec: codec.JSON, workers: 4, maxAttempts: 5, initial: 100 * time.Millisecond, maxBackoff: 30 * time.Second}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithCodec sets the job codec (default codec.JSON).
func WithCodec(c codec.Codec) Option { return func(cfg *config) { cfg.codec = c } }

// Workers sets how many jobs one Work call handles at once (default 4).
func Workers(n int) Option { return func(cfg *config) { cfg.workers = n } }

// Retry sets the most attempts per job (default 5; 1 means no retry) and the
// exponential backoff between them (default 100ms doubling up to 30s, with
// jitter).
func Retry(maxAttempts int, initial, max time.Duration) Option {
	return func(cfg *config) { cfg.maxAttempts, cfg.initial, cfg.maxBackoff = maxAttempts, initial, max }
}

// DeadLetter sets the dead-letter topic (default DeadLetterTopic(topic)).
func DeadLetter(topic string) Option { return func(cfg *config) { cfg.dlTopic = topic } }

// NoDeadLetter disables dead-lettering: a job that failed its last attempt
// is dropped (acknowledged) after the adapter logs it.
func NoDeadLetter() Option { return func(cfg *config) { cfg.noDeadLetter = true } }

// WithMiddleware adds middleware around the job handler, inside the queue's
// own retry and dead-letter layers (outermost first).
func WithMiddleware(mws ...messaging.Middleware) Option {
	return func(cfg *config) { cfg.mws = append(cfg.mws, mws...) }
}

// WithSubscribeOptions passes options to the underlying Subscribe
// (AckDeadline, Prefetch...). Group and Concurrency come from Work.
func WithSubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(cfg *config) { cfg.subOpts = append(cfg.subOpts, opts...) }
}

// Work runs handler on the jobs of topic with the configured number of
// workers, as consumer group group (every Work call with the same group, in
// any process, shares the jobs), until ctx is done or the Subscription is
// closed. c publishes the dead letters; Work provisions the dead-letter topic
// with a consumer group of the same name, which keeps them until read (see
// messaging.Provisioner). A job whose payload does not decode,
// or whose handler returns a messaging.Permanent error, is dead-lettered at
// once without retry.
func Work[T any](ctx context.Context, c messaging.Client, topic, group string, handler func(ctx context.Context, job T, m *messaging.Message) error, opts ...Option) (messaging.Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("queue: nil handler: %w", messaging.ErrInvalidOption)
	}
	cfg := newConfig(opts)
	if cfg.workers < 1 {
		return nil, fmt.Errorf("queue: workers %d: must be at least 1: %w", cfg.workers, messaging.ErrInvalidOption)
	}
	if cfg.maxAttempts < 1 {
		return nil, fmt.Errorf("queue: max attempts %d: must be at least 1: %w", cfg.maxAttempts, messaging.ErrInvalidOption)
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
