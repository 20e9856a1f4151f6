package messaging

import "context"

// Handler processes one delivered message. Its result decides what happens to
// the message:
//
//   - nil acknowledges it; it is not delivered to this group again.
//   - an error wrapped by Permanent acknowledges (or terminates) it without
//     redelivery.
//   - any other error asks for redelivery with Attempt+1, after the delay given
//     with RetryAfter when there is one.
//   - a panic is recovered and treated as an error wrapping ErrHandlerPanic.
//
// The acknowledgement happens after the handler returns, never before. The
// context is cancelled when the subscription stops its handlers (its
// context ended, or Shutdown's did); a handler that then returns a context
// error (ctx.Err(), or one wrapping it, not Permanent) did not finish: its
// message is redelivered, as after a failure, but never given up by
// MaxAttempts: at the last attempt it is released, its attempt given back
// where the broker allows.
type Handler func(ctx context.Context, msg *Message) error

// Middleware wraps a Handler with behaviour such as retry, dead-lettering or
// tracing. Middleware works with every adapter: it sees only the Handler.
type Middleware func(Handler) Handler

// Chain wraps h with mws so that mws[0] is the outermost: Chain(h, a, b)
// runs a, then b, then h.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Publisher sends messages to a topic.
//
// Publish returns nil only when the broker has accepted every message (with
// publisher confirms, acks or equivalent; durably on persistent adapters). If
// some messages were not accepted it returns a *PublishError naming them;
// messages it reports as failed may still have reached the broker (a lost
// confirm), so retrying them can create duplicates, never loss. Messages of one
// call with the same Key keep their order.
//
// Publish sets ID (when empty) and Time (when zero) on the given messages
// where the adapter claims Capabilities.PublishAssignsID (every adapter but
// core NATS, see Message.ID); the caller must not change the messages while
// Publish runs. All methods are safe
// for concurrent use. After Close, Publish returns an error wrapping ErrClosed.
// To keep messages in flight from one goroutine without waiting for each
// call, see AsyncPublisher, which every adapter's Client implements.
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...*Message) error
	Close() error
}

// Consumer delivers the messages of topics to handlers.
//
// Subscribe validates its arguments, establishes the subscription with the
// broker (creating the group and its durable state where the broker has them)
// and returns once messages published from then on will reach it; delivery
// runs in the background until ctx is done, the Subscription is closed or
// the Consumer is closed. Subscriptions with the same Group option share the
// messages; each distinct group gets every message; without a Group option
// the subscription is an ephemeral group of its own.
//
// Subscribe is safe for concurrent use. After Close it returns an error
// wrapping ErrClosed; with a ctx already done, an error wrapping ctx's.
// Close stops every subscription as Subscription.Close does.
type Consumer interface {
	Subscribe(ctx context.Context, topic string, h Handler, opts ...SubscribeOption) (Subscription, error)
	Close() error
}

// Subscription is a running delivery of messages to a handler.
type Subscription interface {
	// Close stops fetching new messages, waits for the handlers in flight to
	// return and settles their messages (ack or nack), releases messages that
	// were fetched but not handled, and returns. It is idempotent. To bound
	// the wait, use Shutdown, or cancel the context given to Subscribe:
	// handlers see it. A fetch blocked in the broker does not delay Close.
	// After a Shutdown whose context ended (or once one ends while Close
	// waits), Close does not wait for the handlers that Shutdown gave up on:
	// it waits until their released messages are settled with the broker
	// and the subscription has left it.
	Close() error

	// Shutdown is Close with a bound, like net/http's Server.Shutdown: it
	// stops fetching, releases messages fetched but not handled, and waits
	// for the handlers in flight until they return or ctx ends, whichever
	// comes first. When ctx ends first it cancels the handlers' context,
	// releases their messages for redelivery to the group at once (what a
	// handler returns after that is ignored) and returns ctx's error
	// without waiting further; Done is closed once the last handler has
	// returned. It returns nil when every handler finished in time. It is
	// safe to call more than once and together with Close.
	Shutdown(ctx context.Context) error

	// Done is closed when the subscription has ended and every handler has
	// returned.
	Done() <-chan struct{}

	// Err returns, once Done is closed, nil if the subscription ended because
	// its context was done or it was closed, or the error that ended it.
	Err() error
}

// Stream reads a topic's durable log from a position, without a group and
// without acknowledgements; reading never disturbs groups. Adapters whose
// Capabilities report Replay implement it.
//
// Read validates its arguments, positions a reader at from, and returns once
// the reader is positioned: with Latest, every message published after Read
// returns is delivered. It delivers messages in log order (per partition on partitioned brokers)
// to h, one at a time, starting at from, and keeps following the log until ctx
// is done or the subscription is closed. A handler error ends the read; the
// Subscription's Err reports it, and the caller can resume from the last
// message's Offset with AfterOffset. Attempt is always 1.
type Stream interface {
	Read(ctx context.Context, topic string, from Position, h Handler) (Subscription, error)
}

// Shutdowner is implemented by clients whose consumer side can stop with a
// bound (every client built on package engine): Shutdown refuses new
// subscriptions and shuts every subscription down as Subscription.Shutdown
// does, with the same ctx, all at once. Its consumer side counts as closed
// from then on (Subscribe, SubscribeBatch, Read and Serve fail with
// ErrClosed); publishing and the other calls work until Close, so that the
// handlers finishing during the Shutdown can publish their results (the
// usual consume-then-publish worker) instead of failing and being
// redelivered. Close still has to be called to release its connections,
// and does not wait for the handlers that a Shutdown whose ctx ended gave
// up on.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Client is what Open returns: a Publisher and a Consumer sharing one
// connection, with the adapter's capabilities. Close closes both, the
// consumer side first: it waits for subscriptions to drain (their handlers
// can still publish), then makes every call fail with ErrClosed. It is
// idempotent.
//
// A Client may also implement Stream and Provisioner; check with a type
// assertion (or Capabilities().Replay).
type Client interface {
	Publisher
	Consumer
	Capabilities() Capabilities
	Close() error
}

// Provisioner creates a topic and the durable state of groups ahead of any
// subscription, so that messages published before the first consumer starts
// are kept for those groups. It is idempotent. Brokers that route only to
// existing queues (RabbitMQ) need it for a publisher that starts first.
type Provisioner interface {
	Provision(ctx context.Context, topic string, groups ...string) error
}

// TopicDeleter deletes a topic and the durable state of all its groups
// (streams, consumer groups, queues, exchanges). Deleting a topic that does
// not exist is not an error. Tests and admin tools use it to clean up.
type TopicDeleter interface {
	DeleteTopic(ctx context.Context, topic string) error
}

// Provision calls c's Provision method when c is a Provisioner and does
// nothing otherwise.
func Provision(ctx context.Context, c any, topic string, groups ...string) error {
	if p, ok := c.(Provisioner); ok {
		return p.Provision(ctx, topic, groups...)
	}
	return nil
}

// PublishFunc adapts a plain function to the Publisher interface; Close does
// nothing. It lets existing code be plugged in where a Publisher is expected.
type PublishFunc func(ctx context.Context, topic string, msgs ...*Message) error

// Publish calls f.
func (f PublishFunc) Publish(ctx context.Context, topic string, msgs ...*Message) error {
	return f(ctx, topic, msgs...)
}

// Close does nothing and returns nil.
func (f PublishFunc) Close() error { return nil }

// PublisherMiddleware decorates a Publisher, for example with batching,
// tracing or metrics.
type PublisherMiddleware func(Publisher) Publisher
