// Package memory is the in-process reference adapter: a broker that lives in
// the process's memory with the same semantics as the networked ones, for
// tests, demos and examples. It registers the scheme "mem".
//
// URL: mem://[name][?max_message_size=1MiB&maxlen=N]. Clients opened with
// the same name (empty is "default") share one broker in the process, so a
// publisher and a consumer opened separately talk to each other.
//
// Parameters (unknown ones are errors):
//
//	max_message_size=1MiB     largest Message.Size accepted (WithMaxMessageSize)
//	maxlen=N                  messages a topic keeps, default 0: all (WithMaxLen);
//	                          applies when the named broker is created
//
// Semantics:
//   - Every topic is a retained log (all messages, or the newest `maxlen`
//     ones); Message.Offset is the decimal log offset, starting at 0.
//   - AtTime positions by the time the broker appended each message, which
//     never goes back along a topic's log however publishers interleave, and
//     comes after the Message.Time that Publish sets, so Read(AtTime(m.Time))
//     starts at m or an earlier message. A Time the caller set plays no part.
//   - Groups keep a cursor and a pending list; a new group starts at StartAt
//     (default Earliest). Delivery is at-least-once: unacknowledged messages
//     come back after a nack (with its RetryAfter delay) or once the
//     subscription's AckDeadline passes, with Attempt incremented; one
//     released (fetched and not handled when its subscription stopped)
//     comes back with the same Attempt. With MaxAttempts, a message whose
//     last allowed delivery expires is given up and logged. The
//     receiver is a driver.Extender: while a subscription holds a message
//     (queued for a handler or running) its deadline is
//     extended, so a slow handler keeps its message and only a dead
//     consumer's messages expire (Client.Kill simulates one, for tests).
//   - A subscription without Group has a private group, named so that no
//     valid group name (messaging.ValidateName) is the same: it never
//     shares a user group's cursor or messages, and is dropped when the
//     subscription ends.
//   - Within a subscription, messages with the same Key are handled in publish
//     order (first deliveries); across subscriptions of one group there is no
//     order promise.
//   - Nothing survives the process: Capabilities().Persistent is false.
//   - The client is a messaging.BatchConsumer: SubscribeBatch hands each fetch
//     of up to BatchSize messages to one handler call. RedeliveryBackoff is
//     ignored (Capabilities().BrokerBackoff is false).
//   - DeleteTopic ends the topic's live subscriptions and reads with an error
//     wrapping messaging.ErrTopicDeleted.
//   - The consumer side is the library's engine (package engine) over the
//     driver in driver.go: the reference for writing an adapter (see package
//     driver). Client.Shutdown and Subscription.Shutdown bound Close with a
//     context.
//   - Inspect reports every figure of messaging.TopicStats from the broker's
//     state (see Client.Inspect for their exact meaning) and Topics lists
//     the broker's topics.
//   - Publish copies payloads and headers, and each delivery gets its own copy,
//     so neither side can change what the other sees.
package memory
