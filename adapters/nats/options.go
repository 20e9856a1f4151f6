package nats

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/optcheck"
)

// Mode selects what a Client publishes and consumes with.
type Mode int

const (
	// ModeJetStream (the default) stores every topic in a JetStream stream:
	// persistent, at-least-once, groups as durable pull consumers, replay.
	ModeJetStream Mode = iota
	// ModeCore uses plain core NATS subjects: fire-and-forget, nothing is
	// stored, a message published while no subscriber listens is gone, and a
	// failed handler's message is not redelivered. Groups are queue groups.
	ModeCore
)

// String returns "jetstream" or "core", the values of the mode URL parameter.
func (m Mode) String() string {
	if m == ModeCore {
		return "core"
	}
	return "jetstream"
}

// Defaults of the Client's options.
const (
	DefaultPrefetch       = 256
	DefaultMaxInFlight    = 4096
	DefaultPublishTimeout = 30 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// Option configures a Client built with Open or New. Each option checks
// its argument: an invalid one makes Open or New fail with an error
// wrapping messaging.ErrInvalidOption that names the option. Options apply
// in order; a later one overrides an earlier one of the same kind.
type Option func(*config) error

type config struct {
	mode           Mode
	logger         *slog.Logger
	prefetch       int
	maxInFlight    int
	maxAckPending  int
	publishTimeout time.Duration
	requestTimeout time.Duration
	unavailable    time.Duration // how long Publish waits for a connection, or an answer
	bindStreams    bool
	streamPrefix   string
	storage        jetstream.StorageType
	replicas       int
	maxAge         time.Duration
	maxBytes       int64
	retention      jetstream.RetentionPolicy
	duplicates     time.Duration
	callerIDs      bool // WithCallerIDs: Publish assigns no ID nor Time

	// connection options, used by Open only
	connOpts []natsgo.Option
	tlsConf  *tls.Config

	// set names the options given, for the conflicts newConfig rejects
	set map[string]bool
}

// newConfig applies opts in order and returns the first error, then
// rejects options that conflict.
func newConfig(opts []Option) (config, error) {
	c := config{
		logger:         slog.Default(),
		prefetch:       DefaultPrefetch,
		maxInFlight:    DefaultMaxInFlight,
		publishTimeout: DefaultPublishTimeout,
		requestTimeout: DefaultRequestTimeout,
		unavailable:    messaging.DefaultUnavailableTimeout,
		storage:        jetstream.FileStorage,
		replicas:       1,
		retention:      jetstream.LimitsPolicy,
		set:            map[string]bool{},
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, c.conflicts()
}

// streamSettings are the options about the streams the Client creates,
// which WithExistingStreams and core mode create none of.
var streamSettings = []string{"WithStreamPrefix", "WithStorage", "WithReplicas", "WithMaxAge", "WithMaxBytes", "WithRetention", "WithDuplicateWindow"}

// conflicts rejects options valid alone that contradict each other.
func (c *config) conflicts() error {
	if c.bindStreams {
		for _, o := range streamSettings {
			if c.set[o] {
				return fmt.Errorf("nats: WithExistingStreams and %s: the Client creates no stream to apply %s to: %w", o, o, messaging.ErrInvalidOption)
			}
		}
	}
	if c.mode == ModeCore {
		for _, o := range append([]string{"WithExistingStreams", "WithMaxAckPending"}, streamSettings...) {
			if c.set[o] {
				return fmt.Errorf("nats: WithMode(core) and %s: core NATS has no streams nor consumers: %w", o, messaging.ErrInvalidOption)
			}
		}
	}
	return nil
}

// pkg prefixes the errors of invalid options.
const pkg = "nats"

// invalid returns the error of option name given value.
func invalid(name string, value any, why string) error {
	return optcheck.Invalid(pkg, name, value, why)
}

// positive returns an option setting *field to d, which must be positive.
func positive(name string, d time.Duration, field func(*config) *time.Duration) Option {
	return marked(name, optcheck.Positive(pkg, name, d, field))
}

// nonNegative returns an option setting *field to d, which must not be
// negative (0 has the documented meaning).
func nonNegative(name string, d time.Duration, field func(*config) *time.Duration) Option {
	return marked(name, optcheck.NotNegative(pkg, name, d, field))
}

// atLeast returns an option setting *field to n, which must be at least
// lowest.
func atLeast(name string, n, lowest int, field func(*config) *int) Option {
	return marked(name, optcheck.AtLeast(pkg, name, n, lowest, field))
}

// marked records that option name was given (for the conflicts newConfig
// rejects) once o has accepted its argument.
func marked(name string, o Option) Option {
	return func(c *config) error {
		if err := o(c); err != nil {
			return err
		}
		c.set[name] = true
		return nil
	}
}

// WithMode selects JetStream (default) or core NATS. URL: mode=jetstream|core.
// Core mode conflicts with the options about streams and consumers
// (WithExistingStreams, WithMaxAckPending, WithStreamPrefix, WithStorage,
// WithReplicas, WithMaxAge, WithMaxBytes, WithRetention,
// WithDuplicateWindow).
func WithMode(m Mode) Option {
	return func(c *config) error {
		if m != ModeJetStream && m != ModeCore {
			return invalid("WithMode", int(m), "want ModeJetStream or ModeCore")
		}
		c.mode = m
		c.set["WithMode"] = true
		return nil
	}
}

// WithLogger sets where the Client reports what it cannot return: messages
// given up after MaxAttempts or a Permanent error, failed acknowledgements,
// core-mode messages dropped, disconnects and reconnects. Default
// slog.Default(); nil is invalid.
func WithLogger(l *slog.Logger) Option {
	return optcheck.Required(pkg, "WithLogger", l, "a logger is required", func(c *config) **slog.Logger { return &c.logger })
}

// WithPrefetch sets the default number of messages a subscription pulls
// ahead of its handlers (default 256, at least 1); the Prefetch subscribe
// option overrides it. URL: prefetch=N.
func WithPrefetch(n int) Option {
	return atLeast("WithPrefetch", n, 1, func(c *config) *int { return &c.prefetch })
}

// WithMaxInFlight bounds the JetStream publishes sent but not yet
// acknowledged by the server, across all Publish and PublishAsync calls of
// the Client (default 4096, at least 1); a publish beyond it waits for
// room. nats.go keeps a publish the adapter failed as unavailable (a
// silent server) among its own unacknowledged ones (up to N+1) until
// publish_timeout: a message that finds them full waits for room up to its
// unavailable deadline, then fails unsent with messaging.ErrUnavailable
// (see Client.PublishAsync). URL: max_in_flight=N.
func WithMaxInFlight(n int) Option {
	return atLeast("WithMaxInFlight", n, 1, func(c *config) *int { return &c.maxInFlight })
}

// WithMaxAckPending sets the MaxAckPending of the consumers the Client
// creates: how many messages a group (all its members together) may hold
// unacknowledged before the server stops delivering to it (default 0: the
// server's default, 1000; negative is invalid). Raise it for groups with
// many members or large prefetch. URL: max_ack_pending=N.
func WithMaxAckPending(n int) Option {
	return atLeast("WithMaxAckPending", n, 0, func(c *config) *int { return &c.maxAckPending })
}

// WithPublishTimeout bounds the wait for each JetStream publish
// acknowledgement (default 30s; must be positive); a message not
// acknowledged in time is reported failed by Publish (it may still have
// been stored: retrying it is deduplicated by its ID within the stream's
// duplicate window). It bounds the wait on a server that answers, however
// slowly; one that answers nothing fails the message with
// messaging.ErrUnavailable sooner, after the unavailable timeout (see
// WithUnavailableTimeout). URL: publish_timeout=30s.
func WithPublishTimeout(d time.Duration) Option {
	return positive("WithPublishTimeout", d, func(c *config) *time.Duration { return &c.publishTimeout })
}

// WithRequestTimeout bounds Request when its context has no deadline
// (default 10s; must be positive), and so the flush of a core-mode Publish
// or PublishAsync on a server that answers, however slowly (one that
// answers nothing fails the messages with messaging.ErrUnavailable sooner,
// after the unavailable timeout; see WithUnavailableTimeout). URL:
// request_timeout=10s.
func WithRequestTimeout(d time.Duration) Option {
	return positive("WithRequestTimeout", d, func(c *config) *time.Duration { return &c.requestTimeout })
}

// WithUnavailableTimeout sets how long Publish waits for the connection
// while it is down (the client reconnecting) before failing every message
// with messaging.ErrUnavailable (default messaging.DefaultUnavailableTimeout,
// 5s; must be positive; the call's context may end it sooner, with an error
// that wraps ErrUnavailable too). It also bounds the wait on a server that
// takes messages and answers nothing while the connection stays up (hung,
// or black-holed: nats.go notices a stale connection only after
// PingInterval × MaxPingsOut, minutes by default): a message the server has
// not answered (JetStream: acknowledged; core mode: flushed) the
// unavailable timeout after its Publish call (PublishAsync: after it was
// taken; JetStream, a topic's first publish: after the lookup of its
// stream began) fails with messaging.ErrUnavailable, never sooner than the
// unavailable timeout after the server last answered anything on the
// connection (an acknowledgement, a flush, a JetStream API answer such as
// the stream's lookup or creation, the reconnect): a server that is
// slow but answering is not unavailable, and the messages queued behind its
// answers wait, up to publish_timeout (core mode: request_timeout) each.
// Provision, DeleteTopic, TopicExists, Inspect, Topics and the setup of
// Subscribe and Read wait for a lost connection as long, from the call, and
// make their requests again when the connection is lost while they wait for
// an answer; on a connected server that answers nothing they fail with
// messaging.ErrUnavailable by the same rule (the timeout after the call,
// never sooner than after the server's last answer), not after the
// JetStream API timeout. Close's last flush waits no longer either. URL:
// unavailable_timeout=5s.
func WithUnavailableTimeout(d time.Duration) Option {
	return positive("WithUnavailableTimeout", d, func(c *config) *time.Duration { return &c.unavailable })
}

// WithExistingStreams makes the Client bind each topic to the existing
// stream that captures its subject (found with the server's
// stream-by-subject lookup) instead of creating a stream per topic; for
// legacy setups whose streams capture many subjects ("orders.>"). A topic no
// stream captures is an error. DeleteTopic then purges the topic's subject
// from the stream and deletes the topic's consumers, never the stream. The
// stream's duplicate window then spans all its topics: message IDs must be
// unique across them (generated IDs are). It conflicts with the options
// about created streams (WithStreamPrefix, WithStorage, WithReplicas,
// WithMaxAge, WithMaxBytes, WithRetention, WithDuplicateWindow) and with
// core mode. URL: streams=bind (default streams=create).
func WithExistingStreams() Option {
	return func(c *config) error {
		c.bindStreams = true
		c.set["WithExistingStreams"] = true
		return nil
	}
}

// WithStreamPrefix prefixes the names of the streams the Client creates
// (default none: topic "orders.created" is stream "orders_created"); the
// prefix must be valid in a name (messaging.ValidateName). URL:
// stream_prefix=P.
func WithStreamPrefix(p string) Option {
	return func(c *config) error {
		if err := messaging.ValidateName("x" + p); err != nil {
			return invalid("WithStreamPrefix", fmt.Sprintf("%q", p), err.Error())
		}
		c.streamPrefix = p
		c.set["WithStreamPrefix"] = true
		return nil
	}
}

// WithStorage sets the storage of created streams: jetstream.FileStorage
// (default) or jetstream.MemoryStorage (not persistent across server
// restarts). URL: storage=file|memory.
func WithStorage(s jetstream.StorageType) Option {
	return func(c *config) error {
		if s != jetstream.FileStorage && s != jetstream.MemoryStorage {
			return invalid("WithStorage", int(s), "want jetstream.FileStorage or jetstream.MemoryStorage")
		}
		c.storage = s
		c.set["WithStorage"] = true
		return nil
	}
}

// WithReplicas sets the replication factor of created streams (default 1,
// at most 5; above 1 on clustered servers only). URL: replicas=N.
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return invalid("WithReplicas", n, "must be 1 to 5")
		}
		c.replicas = n
		c.set["WithReplicas"] = true
		return nil
	}
}

// WithMaxAge sets how long created streams keep messages (default 0:
// forever; negative is invalid). URL: max_age=24h.
func WithMaxAge(d time.Duration) Option {
	return nonNegative("WithMaxAge", d, func(c *config) *time.Duration { return &c.maxAge })
}

// WithMaxBytes caps the size of created streams; the oldest messages are
// removed beyond it (default 0: no cap; negative is invalid). URL:
// max_bytes=1GiB.
func WithMaxBytes(n int64) Option {
	return marked("WithMaxBytes", optcheck.NotNegative(pkg, "WithMaxBytes", n, func(c *config) *int64 { return &c.maxBytes }))
}

// WithRetention sets the retention policy of created streams:
// jetstream.LimitsPolicy (default: keep until max age / bytes) or
// jetstream.InterestPolicy (remove a message once every consumer existing
// when it was stored acknowledged it; messages published while no group
// exists are not kept, and Stream reads then see only unacknowledged ones).
// Other policies are invalid. URL: retention=limits|interest.
func WithRetention(r jetstream.RetentionPolicy) Option {
	return func(c *config) error {
		if r != jetstream.LimitsPolicy && r != jetstream.InterestPolicy {
			return invalid("WithRetention", int(r), "want jetstream.LimitsPolicy or jetstream.InterestPolicy")
		}
		c.retention = r
		c.set["WithRetention"] = true
		return nil
	}
}

// WithDuplicateWindow sets the window in which created streams drop a
// message whose ID (Nats-Msg-Id) they have already stored (default 0: the
// server's, 2m; negative is invalid). URL: duplicates=2m.
func WithDuplicateWindow(d time.Duration) Option {
	return nonNegative("WithDuplicateWindow", d, func(c *config) *time.Duration { return &c.duplicates })
}

// WithCallerIDs makes JetStream-mode Publish and PublishAsync send the ID
// and Time their caller set, and nothing when it set none, as core mode
// always does: no ID nor Time is generated, and a message with nothing but
// a payload goes out without a header block, exactly as nats.go's plain
// publish sends it. Capabilities().PublishAssignsID is then false.
//
// What it changes: a consumer (and Read) gets a message published without
// an ID under the ID "<stream>:<sequence>" (its place in the stream, the
// same on every redelivery, so idempotent consumers still work) and, without
// a Time, the time the stream stored it. What it costs: only a message
// whose caller set an ID travels with a Nats-Msg-Id, so only those are
// deduplicated by the stream. A message whose acknowledgement was lost
// (publish timeout, connection lost; reported failed) and that is
// published again may then be stored twice, under two IDs. The default
// (the ID on every message) is what makes such a retry safe; the header
// and the server's duplicate tracking cost about a fifth of the publish
// rate (see PERFORMANCE.md). Core mode behaves so
// already. URL: ids=caller (default ids=assign).
func WithCallerIDs() Option {
	return func(c *config) error {
		c.callerIDs = true
		c.set["WithCallerIDs"] = true
		return nil
	}
}

// WithConnectOptions adds nats.go options to the connection Open makes
// (ignored by New, whose connection already exists): custom reconnect
// policy, handlers, authentication callbacks. A nil option is ignored, as
// nats.Connect ignores one.
func WithConnectOptions(opts ...natsgo.Option) Option {
	return func(c *config) error {
		for _, o := range opts {
			if o != nil {
				c.connOpts = append(c.connOpts, o)
			}
		}
		return nil
	}
}

// WithTLSConfig makes Open connect with TLS using conf (nil is invalid).
func WithTLSConfig(conf *tls.Config) Option {
	return optcheck.Required(pkg, "WithTLSConfig", conf, "a TLS configuration is required", func(c *config) **tls.Config { return &c.tlsConf })
}
