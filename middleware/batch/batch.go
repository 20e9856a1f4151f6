// Package batch handles and publishes messages in batches.
//
// # Consuming in batches
//
// A BatchHandler gets a slice of messages and returns one result per message,
// so that only the failed ones are redelivered. Handler turns it into a
// messaging.Handler: each delivered message waits (unacknowledged) until its
// batch is full (MaxMessages or MaxBytes), the Linger time after the batch's
// first message has passed, or, with Window, the end of the current time
// window; then the BatchHandler runs once for the whole batch and each
// message gets its own result, which the adapter settles as for any handler
// (and which per-message middleware such as retry and deadletter, wrapped
// around the returned Handler, sees).
//
// A batch can only hold as many messages as the subscription hands to
// handlers at once, so subscribe with Concurrency >= MaxMessages. Messages
// wait unacknowledged while a batch fills, so keep Linger (or Window) well
// below the subscription's ack deadline unless the adapter extends deadlines
// of running handlers.
//
// Subscribe does the subscribing for you, and uses the broker's own batch
// fetch when the Consumer is a messaging.BatchConsumer (see the adapters'
// documentation: JetStream pull fetch, XREADGROUP COUNT, the memory
// adapter): each fetch becomes a batch, without a goroutine per message.
//
// # Publishing in batches
//
// NewPublisher coalesces concurrent Publish calls to the same topic into one
// call of the underlying Publisher, and returns to each caller the result for
// its own messages.
package batch

import (
	"time"

	"github.com/msgkit/messaging"
)

// BatchHandler handles a batch of messages. It returns nil or a slice with
// one entry per message: a nil slice or a nil entry means success, an entry
// is that message's handler error (Permanent and RetryAfter work as for a
// Handler). A slice of any other length fails every message of the batch.
//
// It is the same type as messaging.BatchHandler, the handler of adapters
// that fetch in batches.
type BatchHandler = messaging.BatchHandler

// Defaults.
const (
	DefaultMaxMessages = 100
	DefaultMaxBytes    = 1 << 20
	DefaultLinger      = 10 * time.Millisecond
	DefaultSendTimeout = 30 * time.Second
	DefaultMaxInFlight = 1
)

// Option configures Handler, Subscribe and NewPublisher.
type Option func(*config)

type config struct {
	maxMessages int
	maxBytes    int
	linger      time.Duration
	window      time.Duration
	sendTimeout time.Duration
	lingerSet   bool
	maxInFlight int
	subOpts     []messaging.SubscribeOption
}

func newConfig(opts []Option) config {
	c := config{maxMessages: DefaultMaxMessages, maxBytes: DefaultMaxBytes, linger: DefaultLinger, sendTimeout: DefaultSendTimeout, maxInFlight: DefaultMaxInFlight}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// MaxMessages caps a batch at n messages (default 100; n < 1 means 1).
func MaxMessages(n int) Option { return func(c *config) { c.maxMessages = max(n, 1) } }

// MaxBytes closes a batch once its messages' Size adds up to n bytes
// (default 1 MiB; 0 means no byte limit). A single larger message still
// forms a batch of its own.
func MaxBytes(n int) Option { return func(c *config) { c.maxBytes = max(n, 0) } }

// Linger is how long a batch waits for more messages after its first one
// (consumer default 10ms, publisher default 0). With 0 a consumer hands a
// batch over at once (batches of one unless full); a publisher sends at once
// when fewer than MaxInFlight sends are in progress for the topic, and
// otherwise gathers the calls that arrive meanwhile into the next batch
// (group commit: batches grow with the load, without added latency).
func Linger(d time.Duration) Option {
	return func(c *config) {
		c.linger = max(d, 0)
		c.lingerSet = true
	}
}

// MaxInFlight is how many sends per topic a publisher runs at once (default
// 1) before new calls wait for one to finish, gathering into the next batch.
// Full batches are sent regardless. Publisher only.
func MaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = max(n, 1) } }

// Window makes a consumer's batches close at the end of fixed windows of
// length d (aligned to multiples of d since the zero time) instead of Linger
// after their first message: drain what is waiting every d, or earlier when
// MaxMessages are waiting. 0 (default) uses Linger. Consumer only.
func Window(d time.Duration) Option { return func(c *config) { c.window = max(d, 0) } }

// SendTimeout bounds one send of a publisher batch (default 30s). A batch
// sends with a context of its own (the callers' contexts differ); a caller
// whose context ends before its batch is sent gets ctx.Err() and its
// messages are not sent. Publisher only.
func SendTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.sendTimeout = d
		}
	}
}

// SubscribeOptions passes options to the Consumer's Subscribe in Subscribe
// (Concurrency and Prefetch are set from MaxMessages after them).
func SubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(c *config) { c.subOpts = append(c.subOpts, opts...) }
}
