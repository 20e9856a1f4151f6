// Package messaging is one set of interfaces over the message brokers people
// already run: NATS (core and JetStream), Redis Streams, Kafka and RabbitMQ,
// plus an in-memory implementation for tests and demos.
//
// The model has three roles:
//
//   - A [Publisher] hands messages to the broker and returns only once the
//     broker has durably accepted them.
//   - A [Consumer] delivers messages of a topic to a [Handler]. Subscriptions
//     that share a group name compete for messages (a work queue: each message
//     is handled by one member); each distinct group receives every message
//     (an event bus). A handler's nil error acknowledges the message; any other
//     error asks for redelivery with [Message.Attempt] incremented, unless it is
//     wrapped by [Permanent].
//   - A [Stream] reads a durable log from a [Position] (earliest, latest, an
//     offset, a time) without a group and without disturbing groups.
//
// Clients are opened by URL, database/sql style: an adapter package registers
// its scheme with [Register], and [Open] picks the adapter from the URL:
//
//	import _ "github.com/msgkit/messaging/adapters/nats"
//
//	client, err := messaging.Open(ctx, "nats://127.0.0.1:4222")
//
// The URL's query parameters configure the adapter (each adapter documents
// its own; an unknown one is an error), and Open's options ([WithLogger])
// are those every adapter understands. Adapter options (an adapter's
// WithX) check their values: an invalid or conflicting one makes the
// adapter's Open or New fail with an error wrapping [ErrInvalidOption]
// that names it. A nil option is ignored wherever options are taken (Open,
// Subscribe, an adapter's or a middleware's constructor,
// WithSubscribeOptions), so that one can be chosen conditionally; a nil
// handler, middleware, codec or client is an error.
//
// Delivery is at-least-once on every persistent adapter: a message is
// acknowledged only after its handler returned nil, so a crash, a cancelled
// context or a lost connection before that means redelivery. Handlers must
// therefore tolerate duplicates (see the dedupe middleware).
//
// This package imports only the standard library.
package messaging
