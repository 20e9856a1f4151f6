// Package batch handles and publishes messages in batches.
//
// # Consuming in batches
//
// A BatchHandler gets a slice of messages and returns one result per message,
// so that only the failed ones are redelivered. Handler turns it into a
// messaging.Handler: each delivered message waits (unacknowledged) until its
// batch is full (WithBatchSize or WithMaxBatchBytes), the WithBatchTimeout
// (linger) after the batch's first message has passed, or, with WithWindow,
// the end of the current time window; then the BatchHandler runs once for the whole batch and each
// message gets its own result, which the adapter settles as for any handler
// (and which per-message middleware such as retry and deadletter, wrapped
// around the returned Handler, sees).
//
// A batch can only hold as many messages as the subscription hands to
// handlers at once, so subscribe with Concurrency >= WithBatchSize.
// Messages wait unacknowledged while a batch fills, so keep WithBatchTimeout
// (or WithWindow) well below the subscription's ack deadline unless the adapter extends deadlines
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
	"fmt"
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

// Option configures Handler, Subscribe and NewPublisher. An Option given
// an invalid value, or one that does not apply to the function it is given
// to, makes it fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type Option func(*config) error

type config struct {
	maxMessages int
	maxBytes    int
	linger      time.Duration
	window      time.Duration
	sendTimeout time.Duration
	maxInFlight int
	subOpts     []messaging.SubscribeOption
	set         map[string]bool // the options given, by name
}

// Which side an option applies to.
var (
	publisherOnly = []string{"WithMaxInFlight", "WithSendTimeout"}
	consumerOnly  = []string{"WithWindow", "WithSubscribeOptions"}
)

// newConfig applies opts in order and returns the first error; fn names the
// caller and publisher tells its side, whose defaults and options differ.
func newConfig(fn string, publisher bool, opts []Option) (config, error) {
	c := config{maxMessages: DefaultMaxMessages, maxBytes: DefaultMaxBytes, linger: DefaultLinger, sendTimeout: DefaultSendTimeout, maxInFlight: DefaultMaxInFlight, set: map[string]bool{}}
	if publisher {
		c.linger = 0
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	other := publisherOnly
	if publisher {
		other = consumerOnly
	}
	for _, name := range other {
		if c.set[name] {
			return config{}, fmt.Errorf("batch: %s: %s does not apply here: %w", fn, name, messaging.ErrInvalidOption)
		}
	}
	if c.set["WithWindow"] && c.set["WithBatchTimeout"] {
		return config{}, fmt.Errorf("batch: WithBatchTimeout(%v) and WithWindow(%v) conflict: a batch closes after the linger or at the window's end, give one: %w", c.linger, c.window, messaging.ErrInvalidOption)
	}
	return c, nil
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("batch: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithBatchSize caps a batch at n messages (default 100; at least 1), as
// messaging.BatchSize does for a batch fetch.
func WithBatchSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithBatchSize", n, "must be at least 1")
		}
		c.maxMessages = n
		return nil
	}
}

// WithMaxBatchBytes closes a batch once its messages' Size adds up to n bytes
// (default 1 MiB; 0 means no byte limit; negative is invalid). A single
// larger message still forms a batch of its own.
func WithMaxBatchBytes(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("WithMaxBatchBytes", n, "must not be negative")
		}
		c.maxBytes = n
		return nil
	}
}

// WithBatchTimeout (the linger) is how long a batch waits for more messages
// after its first one (consumer default 10ms, publisher default 0; negative
// is invalid), as the Kafka adapter's WithBatchTimeout does for its produce
// requests.
// With 0 a consumer hands a batch over at once (batches of one unless full);
// a publisher sends at once when fewer than WithMaxInFlight sends are in
// progress for the topic, and otherwise gathers the calls that arrive
// meanwhile into the next batch (group commit: batches grow with the load,
// without added latency). It conflicts with WithWindow.
func WithBatchTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("WithBatchTimeout", d, "must not be negative")
		}
		c.linger = d
		c.set["WithBatchTimeout"] = true
		return nil
	}
}

// WithMaxInFlight is how many sends per topic a publisher runs at once
// (default 1; at least 1) before new calls wait for one to finish, gathering
// into the next batch. Full batches are sent regardless. NewPublisher only.
func WithMaxInFlight(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithMaxInFlight", n, "must be at least 1")
		}
		c.maxInFlight = n
		c.set["WithMaxInFlight"] = true
		return nil
	}
}

// WithWindow makes a consumer's batches close at the end of fixed windows
// of length d (aligned to multiples of d since the zero time) instead of
// the linger after their first message: drain what is waiting every d, or
// earlier when WithBatchSize are waiting. d must be positive (without
// WithWindow the linger applies). It conflicts with WithBatchTimeout. Handler and
// Subscribe only.
func WithWindow(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithWindow", d, "must be positive")
		}
		c.window = d
		c.set["WithWindow"] = true
		return nil
	}
}

// WithSendTimeout bounds one send of a publisher batch (default 30s; must be
// positive). A batch sends with a context of its own (the callers' contexts
// differ); a caller whose context ends before its batch is sent gets
// ctx.Err() and its messages are not sent. NewPublisher only.
func WithSendTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithSendTimeout", d, "must be positive")
		}
		c.sendTimeout = d
		c.set["WithSendTimeout"] = true
		return nil
	}
}

// WithSubscribeOptions passes options to the Consumer's Subscribe in
// Subscribe (Concurrency and Prefetch are set from WithBatchSize after
// them). Nil options are ignored. Handler and Subscribe only.
func WithSubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(c *config) error {
		c.subOpts = append(c.subOpts, opts...) // nil ones are ignored by Subscribe
		c.set["WithSubscribeOptions"] = true
		return nil
	}
}
