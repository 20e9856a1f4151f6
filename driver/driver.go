// Package driver states what a broker adapter provides to the library's
// consumer engine (package engine), the way database/sql/driver states what
// a database driver provides to database/sql. An adapter implements these
// small interfaces with the broker's wire calls only; the engine runs
// everything between them and the user's handler: the Subscribe,
// SubscribeBatch and Read lifecycles, the per-key worker pool, prefetch,
// settlement batched off the handlers' path, deadline extension, in-process
// delays and redelivery where the broker has none, backoff after transient
// errors, bounded shutdown and the logging of given-up messages. For the
// publishing side it has PreparePublish and NewID, package driver/asyncpub
// gives PublishAsync over a batch Publish, and package driver/urlparam
// reads an adapter's URL parameters.
//
// # Writing an adapter
//
// The memory adapter (package adapters/memory) is the reference: copy it.
//
//  1. Implement Driver: Capabilities says what the broker does itself (the
//     engine does the rest, see below); OpenReceiver joins the topic's group
//     for one subscription and returns a Receiver.
//  2. Implement Receiver: Receive fetches deliveries (each a message plus
//     the adapter's token for settling it), Settle applies a batch of
//     outcomes, Close leaves the group.
//  3. Optionally implement Extender on the Receiver (the broker redelivers
//     a message held longer than AckDeadline and can push that deadline
//     back), and LogReader on the Driver (the broker keeps a log that can be
//     read from a messaging.Position: the client then implements
//     messaging.Stream).
//  4. Classify errors: wrap a broker error the engine should retry (a lost
//     connection, a leader election) with Transient; wrap a topic that is
//     gone with messaging.ErrTopicDeleted; anything else ends the
//     subscription with that error.
//  5. Build the client: engine.New(driver, options) returns an
//     *engine.Consumer whose Subscribe, SubscribeBatch, Read, Shutdown and
//     Close the adapter's Client exposes (by embedding it); the adapter adds
//     Publish, Provision, DeleteTopic and its constructors. Publish starts
//     with PreparePublish, which rejects what no adapter accepts (an
//     invalid topic or header, a nil or too large message) with the
//     library's errors and gives each message its ID and Time.
//     PublishAsync and Flush (messaging.AsyncPublisher): a Batcher of
//     package driver/asyncpub over Publish where the broker pipelines
//     publishes, else messaging.PublishAsync over Publish (memory).
//  6. Open from a URL: register the scheme with messaging.Register and
//     read the query with package driver/urlparam, which rejects unknown
//     and malformed parameters naming them.
//  7. Register the adapter's harness in package integration and run
//     integration.RunConformance.
//
// The memory adapter imports only public packages (messaging, driver,
// driver/urlparam, engine), so everything it does an adapter outside this
// module can do too.
//
// What the engine does with the capabilities:
//   - NativeDelay false: a message nacked with a delay is held by the engine
//     (its deadline extended where the Receiver is an Extender) and settled
//     with a zero-delay Nack when the delay has passed, or with the delay
//     left when the subscription stops first (see Nack).
//   - BrokerAttempts false: the broker cannot redeliver one message (a log
//     without per-message acknowledgement, such as Kafka); the engine
//     redelivers nacked messages to the same subscription itself, counting
//     Attempt, and a Receiver only ever settles Ack, Term and Release.
package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
)

// Driver opens receivers for the engine. Its methods are safe for concurrent
// use.
type Driver interface {
	// Capabilities reports what the broker guarantees and does itself. It
	// must not change over the driver's life. A Receiver may override it for
	// its subscription (see ReceiverCapabilities).
	Capabilities() messaging.Capabilities

	// OpenReceiver establishes one subscription with the broker for topic,
	// with the resolved options o (topic and options are already
	// validated): it creates or joins the group (o.Group; empty means an
	// ephemeral group of one, starting at o.StartAt) and returns once
	// messages published from then on will reach the receiver. An error
	// fails the Subscribe call; it is returned to the user as is.
	OpenReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (Receiver, error)
}

// Delivery is one fetched message and the adapter's token for settling it.
type Delivery struct {
	// Msg is the message for the handler, with Topic, Group, Attempt (1 on
	// the first delivery), Offset and Time filled in. The engine and the
	// handler may change it; the adapter must not keep using it.
	Msg *messaging.Message
	// Token is the adapter's handle for settling the delivery (a JetStream
	// message, a stream ID, a delivery tag, an offset...). The engine passes
	// it back unchanged.
	Token any
	// Err, when not nil, says the adapter received the message but cannot
	// hand it over intact (its codec could not decode it: a header table
	// the client library refuses, a malformed envelope). The engine does
	// not run the handler: it settles the delivery Term with Err (dead-
	// lettered natively where configured, else acknowledged) and logs it,
	// so a message no consumer can read never stops the queue. Msg must
	// still carry what is known (ID, Topic, Attempt) for the log and the
	// dead letter.
	Err error
	// ExtendEvery, for an Extender, is how often this delivery's deadline
	// must be extended while the engine holds it; 0 means a third of the
	// subscription's AckDeadline.
	ExtendEvery time.Duration
	// Lease, when not nil, ends when the delivery is no longer the
	// receiver's to settle: the broker has given it to another consumer
	// (a Kafka partition revoked in a rebalance). The engine then stops
	// holding it for an in-process delay or redelivery (without
	// Capabilities().BrokerAttempts, or NativeDelay for a delayed nack): it
	// settles it Release at once, so the receiver is not kept waiting for
	// the delay, and does not hand it to a handler again (a handler already
	// running it again goes on; what it returns is ignored). Before its
	// first failure the engine does not watch Lease: a delivery waiting for
	// or running in its first handler is settled as usual.
	Lease context.Context
}

// Outcome is what the engine asks the broker to do with a delivery.
type Outcome int

const (
	// Ack: the handler succeeded; the message is not delivered to this
	// group again.
	Ack Outcome = iota
	// Nack: the handler failed; redeliver it with Attempt+1, no sooner than
	// Settlement.Delay from now. Without Capabilities().NativeDelay the
	// engine holds delays itself and nacks when they are due, with a zero
	// Delay, except when the subscription stops meanwhile: it then nacks
	// at once with the delay left, which the driver keeps as well as the
	// broker lets it (the Redis driver: the entry's idle time, so that no
	// member claims it before) or ignores (the message is redelivered
	// at once).
	Nack
	// Term: do not redeliver (a Permanent error, or MaxAttempts reached):
	// dead-letter it natively where configured, else acknowledge it. The
	// engine has logged it already.
	Term
	// Release: the message was fetched but not handled to the end (the
	// subscription stopped first); make it available again, without
	// counting an attempt where the broker allows.
	Release
)

func (o Outcome) String() string {
	switch o {
	case Ack:
		return "ack"
	case Nack:
		return "nack"
	case Term:
		return "term"
	case Release:
		return "release"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Settlement is one delivery's outcome.
type Settlement struct {
	Delivery
	Outcome Outcome
	// Delay is the wait before redelivery, for Nack.
	Delay time.Duration
	// Err is the handler's error, for Nack and Term (the dead-letter reason).
	Err error
}

// Receiver is one subscription's connection to the broker.
//
// The engine calls Receive from one goroutine, Settle from another (one at a
// time), Extend (if implemented) from a third, concurrently with each other;
// Close once, after every other call has returned.
type Receiver interface {
	// Receive returns up to max (>= 1) deliveries. It blocks until at least
	// one is available or ctx ends; then it returns ctx's error, promptly
	// (Close and Shutdown cancel ctx and do not wait for a blocked fetch
	// otherwise). It must not return zero deliveries with a nil error.
	// Deliveries come in the broker's order; the engine keeps per-key order
	// from there on.
	//
	// An error wrapped by Transient makes the engine back off and call
	// Receive again (the receiver re-establishes what it lost, a consumer or
	// a connection, on that call). An error wrapping
	// messaging.ErrTopicDeleted ends the subscription with that error: its
	// topic was deleted under it. Any other error ends the subscription
	// with it. Deliveries returned with an error are settled as usual.
	//
	// Between two calls may pass as long as a handler runs (with
	// Concurrency 1 the engine runs a lone delivery in the goroutine that
	// calls Receive) or as the engine holds Prefetch deliveries: what the
	// broker pushes meanwhile waits in the receiver, and a receiver whose
	// broker redelivers unacknowledged messages after a deadline extends
	// those too when Extend is called (as the NATS one does).
	//
	// ctx ends when the engine stops fetching (Close, Shutdown); for
	// SubscribeBatch also when a batch's wait ends, and once the call has
	// returned. While the ctx of the last call has not ended, the engine
	// gives back a credit for each settled delivery and calls Receive
	// again with it: a receiver may ask the broker for those deliveries'
	// successors as it settles them (the NATS one does, in the last
	// acknowledgement of a batch), counting them as asked for in the next
	// call's max.
	//
	// The engine copies the deliveries out of the returned slice before it
	// calls Receive again: a receiver may return the same array from call
	// to call (clearing it when the next call starts, so that it does not
	// keep the last batch's messages alive while the subscription idles).
	Receive(ctx context.Context, max int) ([]Delivery, error)

	// Settle applies the outcomes of a batch of deliveries, in order. The
	// engine settles every delivery exactly once (stale tokens, of a
	// delivery the broker has meanwhile given to someone else, must be
	// ignored without error). A Release or a zero-delay Nack must make the
	// message available to the other members of the group at once, not
	// after a deadline. ctx carries a timeout; Settle must not block
	// beyond it. An error means some outcomes may not have been applied:
	// the engine logs it once and relies on the broker's redelivery after
	// the ack deadline (so Settle must be safe to have partially applied).
	// Settle must not keep batch after it returns: the engine reuses it.
	Settle(ctx context.Context, batch []Settlement) error

	// Close ends the subscription with the broker (leaving the group,
	// dropping an ephemeral group's state). Every delivery has been settled
	// when the engine calls it.
	Close(ctx context.Context) error
}

// ReceiverCapabilities is implemented by a Receiver whose subscription has
// other capabilities than its Driver reports (a RabbitMQ exclusive queue
// without delayed redelivery, for example). The engine uses the receiver's.
type ReceiverCapabilities interface {
	Capabilities() messaging.Capabilities
}

// Extender is implemented by a Receiver whose broker redelivers a message
// held longer than AckDeadline and can push that deadline back. The engine
// extends every delivery it holds (queued for a handler, running, or held
// for an in-process delay) every Delivery.ExtendEvery, so only a crashed
// consumer's messages are redelivered after AckDeadline.
type Extender interface {
	// Extend pushes back the redelivery deadline of ds. It is called
	// concurrently with Receive and Settle, and may race with the
	// settlement of one of ds: extending a settled delivery must be
	// harmless. An error is logged; the broker may then redeliver
	// (at-least-once still holds). The engine stops extending when
	// Shutdown's context ends, so a handler that never returns does not
	// keep its message from the group.
	Extend(ctx context.Context, ds []Delivery) error
}

// LogReader is implemented by a Driver whose broker keeps a log that can be
// read from a messaging.Position (Capabilities().Replay).
type LogReader interface {
	// OpenLog positions a reader of topic's log at from (validated) and
	// returns once it is positioned: with messaging.Latest, everything
	// published after OpenLog returns is read. It fails with an error
	// wrapping messaging.ErrUnsupported when the driver cannot read this
	// topic's log, and with messaging.ErrInvalidOption for a malformed
	// offset.
	OpenLog(ctx context.Context, topic string, from messaging.Position) (Log, error)
}

// Log reads one topic's log for Stream.Read, without a group and without
// acknowledgements. The engine calls Next from one goroutine, then Close.
type Log interface {
	// Next returns the next messages in log order (per partition on
	// partitioned brokers), blocking until at least one is available or ctx
	// ends. Errors are classified as for Receiver.Receive.
	Next(ctx context.Context) ([]*messaging.Message, error)
	// Close releases the reader.
	Close() error
}

// transientError marks an error the engine retries.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Transient wraps err to tell the engine that the operation may succeed
// later (a lost connection, a broker restarting): it backs off and retries
// instead of ending the subscription. Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsTransient reports whether err, or any error it wraps, was marked by
// Transient.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}
