// Package asyncpub gives an adapter a native messaging.AsyncPublisher over
// its batch Publish, with the machinery the library's Redis, Kafka and
// RabbitMQ adapters use: messages wait in a few lanes, each lane sends
// what is queued in it (up to a bound) as one Publish call while the next
// batch fills, and every message ends with exactly one result. A message's
// lane is chosen by its Key, so messages with the same Key are published
// in order; keyless ones are spread over the lanes. At most DefaultWindow
// messages are pending per Batcher: PublishAsync blocks while the window
// is full, until a result frees a slot or its ctx ends.
//
// An adapter's Client holds a Batcher (see the example): its PublishAsync
// and Flush call the Batcher's, and its Close calls Batcher.Close before it
// closes the connection. An adapter whose broker cannot pipeline publishes
// uses messaging.PublishAsync over its Publish instead, as the memory
// adapter does.
package asyncpub

import (
	"context"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// DefaultWindow is the most messages a Batcher keeps pending (queued or
// waiting for the broker).
const DefaultWindow = asyncpub.DefaultWindow

// SendFunc publishes msgs, all valid and all to topic, as one batch, and
// returns nil, a *messaging.PublishError with one entry per message, or an
// error that applies to every message: typically the adapter's Publish
// after its checks.
type SendFunc = func(ctx context.Context, topic string, msgs ...*messaging.Message) error

// ValidateFunc checks one message as the adapter's Publish would before
// sending anything, and sets its ID and Time (driver.PreparePublish of the
// one message); an error fails that message alone, before it is queued.
type ValidateFunc = func(topic string, m *messaging.Message) error

// Batcher implements messaging.AsyncPublisher's PublishAsync and Flush for
// an adapter (see the package documentation). It is safe for concurrent
// use.
type Batcher struct{ b *asyncpub.Batcher }

// NewBatcher returns a Batcher with lanes lanes (at least 1) that sends
// batches of at most maxBatch messages (at least 1) through send, each
// message checked by validate when it is given.
func NewBatcher(lanes, maxBatch int, validate ValidateFunc, send SendFunc) *Batcher {
	return &Batcher{b: asyncpub.NewBatcher(lanes, maxBatch, validate, send)}
}

// PublishAsync queues m for topic; done (which may be nil) gets its result
// once, with the errors messaging.AsyncPublisher states: validate's error,
// messaging.ErrClosed after Close, ctx's error when ctx ended before m was
// sent, else send's result for m.
func (b *Batcher) PublishAsync(ctx context.Context, topic string, m *messaging.Message, done messaging.PublishCallback) {
	b.b.PublishAsync(ctx, topic, m, done)
}

// Flush waits until no message is pending (every message given before it
// has had its result), or until ctx ends (then it returns ctx's error).
func (b *Batcher) Flush(ctx context.Context) error { return b.b.Flush(ctx) }

// Close refuses new messages, fails those still queued with
// messaging.ErrClosed, and returns once the batches in flight have their
// results. Call it first in the client's Close, while send still works.
func (b *Batcher) Close() { b.b.Close() }
