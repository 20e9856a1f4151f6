package messaging

// Capabilities says what an adapter guarantees. The conformance suite in
// package integration runs the cases for every capability an adapter claims,
// and the README publishes the matrix.
type Capabilities struct {
	// Persistent: accepted messages survive a broker restart (subject to the
	// broker's own durability settings), and delivery is at-least-once.
	Persistent bool
	// Groups: named consumer groups share messages (work queue) and distinct
	// groups each get every message (fan-out).
	Groups bool
	// Replay: the adapter implements Stream and the StartAt positions.
	Replay bool
	// ReplayByTime: Replay includes AtTime positions.
	ReplayByTime bool
	// GroupStartAt: a new group starts where StartAt says, including before
	// its own creation (Earliest, the default, keeps everything published to
	// the topic). Without it a group sees only messages published after it
	// was created or provisioned.
	GroupStartAt bool
	// PerKeyOrder: messages with the same Key reach a subscription's handler
	// in publish order (first deliveries; a redelivery may come later).
	PerKeyOrder bool
	// AckDeadline: the messages of a consumer that died (or lost its
	// connection) are redelivered at the latest after the subscription's
	// AckDeadline: at once where the broker sees the connection close
	// (RabbitMQ), after the deadline where it tracks each message (NATS,
	// Redis). While a handler runs its deadline is extended, so a handler
	// that hangs keeps its message: bound handlers with middleware/timeout.
	AckDeadline bool
	// BrokerAttempts: Attempt is counted by the broker and survives consumer
	// restarts; otherwise it is counted by the adapter in process.
	BrokerAttempts bool
	// BrokerBackoff: the RedeliveryBackoff subscribe option is kept by the
	// broker, for failed messages and for those of a crashed consumer alike.
	BrokerBackoff bool
	// NativeDelay: RetryAfter delays are kept by the broker, not the adapter.
	NativeDelay bool
	// NativeDeadLetter: the broker can move messages to a dead-letter target
	// itself (after MaxAttempts or a Permanent error).
	NativeDeadLetter bool
	// DedupeByID: the broker drops a message whose ID it already holds
	// (within the adapter's documented window) and Publish reports that
	// message with an error wrapping ErrDuplicate (see IgnoreDuplicates).
	// Without it both messages are stored and delivered.
	DedupeByID bool
	// PublishAssignsID: Publish gives a message without an ID a new unique
	// ID, and one without a Time the current time, before sending (the
	// caller reads them after Publish returns), and consumers receive that
	// ID and Time. Without it (core NATS, the fire-and-forget mode) a
	// message travels with the ID and Time its caller set, and nothing
	// when it set none; a consumer receiving a message without an ID gets
	// one generated on delivery (unique, but known to no one else), and
	// without a Time the time it was received.
	PublishAssignsID bool
	// MaxMessageSize is the largest Message.Size the adapter accepts; larger
	// messages fail with ErrMessageTooLarge. 0 means no limit.
	MaxMessageSize int
}
