package messaging

import (
	"context"
	"errors"
)

// PublishCallback receives the result of one message given to
// AsyncPublisher.PublishAsync: msg is that message (with its ID and Time
// set when it got that far), err is nil when the broker accepted it, or why
// it did not.
type PublishCallback func(msg *Message, err error)

// AsyncPublisher is implemented by publishers that can send a message
// without waiting for the broker's answer, so that one goroutine keeps many
// messages in flight (the shape of franz-go's Produce with a promise, and of
// JetStream's PublishAsync). Every adapter's Client implements it natively
// (JetStream async publish, the Kafka producer's queue, RabbitMQ publisher
// confirms, Redis pipelines, in-process for memory); use the PublishAsync
// and Flush functions to publish through any Publisher.
//
// PublishAsync takes one message and returns once it is queued for sending.
// done is called exactly once for every message, with the same result
// Publish would give it: nil once the broker accepted it (confirmed,
// acknowledged; durably on persistent adapters), or an error naming the
// message's failure, wrapping the same sentinels Publish uses
// (ErrInvalidTopic, ErrInvalidHeader, ErrMessageTooLarge, ErrDuplicate,
// ErrUnavailable, ErrClosed, ctx's error). A message reported as failed may
// still have reached the broker (a lost acknowledgement): retrying can
// duplicate, never lose. An invalid message fails alone; the messages
// around it are sent. A nil done ignores the results.
//
// Flow control: at most a bounded number of messages are pending (queued
// or waiting for the broker) per client; the bound is each adapter's
// documented window. PublishAsync blocks while the window is full, until a
// message's result frees a slot or ctx ends (then the message fails with
// ctx's error without being sent). A message queued in the client whose ctx
// has ended by the time its turn to be sent comes fails with ctx's error
// instead (the queue's wait is bounded by the adapter's timeouts); once it
// has been sent, the broker's answer decides (the adapter still fails it
// with ErrUnavailable after its unavailable timeout).
//
// Order: messages with the same non-empty Key published to one topic by one
// goroutine are written in the order of the PublishAsync calls, as messages
// of one Publish call are. Callbacks come in no promised order.
//
// Callbacks run on adapter goroutines, possibly several at once, or on the
// calling goroutine before PublishAsync returns when the message fails at
// once (invalid, closed client, ctx done). A callback must be quick: it
// delays the results of other messages while it runs. It must not call
// Flush or Close (deadlock); it may call PublishAsync only when the window
// cannot be full (otherwise it waits for itself). It must not panic: on an
// adapter goroutine a panic is not recovered and ends the program, as in any
// goroutine; on the calling goroutine it reaches the caller, and the message
// still counts as ended (Flush does not wait for it).
//
// PublishAsync sets ID (when empty) and Time (when zero) as Publish does
// (where the adapter claims Capabilities.PublishAssignsID);
// the caller must not change the message until done is called.
//
// Flush waits until every message given to PublishAsync on this client,
// including those given concurrently while it waits, has its result and
// its callback has returned; it returns nil then, or ctx's error when ctx
// ends first (the messages stay in flight). Results are reported only to
// the callbacks: Flush does not say whether messages failed.
//
// Close: once Close starts, PublishAsync fails messages with ErrClosed;
// messages already sent get the broker's answer (bounded by the adapter's
// timeouts) and messages still queued in the client fail with ErrClosed,
// each with its one result, before Close returns. Call Flush before Close to
// have every message sent.
//
// A Publish is a PublishAsync of each message followed by a wait for their
// results; an adapter may build it that way.
type AsyncPublisher interface {
	PublishAsync(ctx context.Context, topic string, msg *Message, done PublishCallback)
	Flush(ctx context.Context) error
}

// PublishAsync publishes msg through p's native PublishAsync when p is an
// AsyncPublisher. Otherwise it calls p.Publish(ctx, topic, msg) and then
// done with its result, before returning: the contract (one result per
// message, the same errors) holds, but without pipelining.
func PublishAsync(ctx context.Context, p Publisher, topic string, msg *Message, done PublishCallback) {
	if ap, ok := p.(AsyncPublisher); ok {
		ap.PublishAsync(ctx, topic, msg, done)
		return
	}
	err := p.Publish(ctx, topic, msg)
	var pe *PublishError
	if errors.As(err, &pe) && len(pe.Errs) == 1 {
		err = pe.Errs[0]
	}
	if done != nil {
		done(msg, err)
	}
}

// Flush calls p's Flush when p is an AsyncPublisher and returns nil
// otherwise (PublishAsync through a plain Publisher has nothing pending).
func Flush(ctx context.Context, p Publisher) error {
	if ap, ok := p.(AsyncPublisher); ok {
		return ap.Flush(ctx)
	}
	return nil
}
