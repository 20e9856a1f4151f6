package nats

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
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

// Option configures a Client built with Open or New.
type Option func(*config)

type config struct {
	mode           Mode
	logger         *slog.Logger
	prefetch       int
	maxInFlight    int
	maxAckPending  int
	publishTimeout time.Duration
	requestTimeout time.Duration
	unavailable    time.Duration // how long Publish waits for a connection
	bindStreams    bool
	streamPrefix   string
	storage        jetstream.StorageType
	replicas       int
	maxAge         time.Duration
	maxBytes       int64
	retention      jetstream.RetentionPolicy
	duplicates     time.Duration

	// connection options, used by Open only
	connOpts []natsgo.Option
	tlsConf  *tls.Config
}

func newConfig(opts []Option) config {
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
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

func (c *config) validate() error {
	switch {
	case c.mode != ModeJetStream && c.mode != ModeCore:
		return fmt.Errorf("%w: unknown mode %d", messaging.ErrInvalidOption, int(c.mode))
	case c.prefetch < 1:
		return fmt.Errorf("%w: prefetch %d: must be at least 1", messaging.ErrInvalidOption, c.prefetch)
	case c.maxAckPending < 0:
		return fmt.Errorf("%w: max ack pending %d: must not be negative", messaging.ErrInvalidOption, c.maxAckPending)
	case c.maxInFlight < 1:
		return fmt.Errorf("%w: max in flight %d: must be at least 1", messaging.ErrInvalidOption, c.maxInFlight)
	case c.replicas < 1 || c.replicas > 5:
		return fmt.Errorf("%w: replicas %d: must be 1 to 5", messaging.ErrInvalidOption, c.replicas)
	case c.publishTimeout <= 0 || c.requestTimeout <= 0 || c.unavailable <= 0:
		return fmt.Errorf("%w: timeouts must be positive", messaging.ErrInvalidOption)
	case c.maxAge < 0 || c.maxBytes < 0 || c.duplicates < 0:
		return fmt.Errorf("%w: max age, max bytes and duplicate window must not be negative", messaging.ErrInvalidOption)
	}
	if err := messaging.ValidateName("x" + c.streamPrefix); c.streamPrefix != "" && err != nil {
		return fmt.Errorf("%w: stream prefix %q: %v", messaging.ErrInvalidOption, c.streamPrefix, err)
	}
	return nil
}

// WithMode selects JetStream (default) or core NATS. URL: mode=jetstream|core.
func WithMode(m Mode) Option { return func(c *config) { c.mode = m } }

// WithLogger sets where the Client reports what it cannot return: messages
// given up after MaxAttempts or a Permanent error, failed acknowledgements,
// core-mode messages dropped. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithPrefetch sets the default number of messages a subscription pulls
// ahead of its handlers (default 256); the Prefetch subscribe option
// overrides it. URL: prefetch=N.
func WithPrefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// WithMaxInFlight bounds the JetStream publishes sent but not yet
// acknowledged by the server, across all Publish calls of the Client
// (default 4096). URL: max_in_flight=N.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// WithMaxAckPending sets the MaxAckPending of the consumers the Client
// creates: how many messages a group (all its members together) may hold
// unacknowledged before the server stops delivering to it (default 0: the
// server's default, 1000). Raise it for groups with many members or large
// prefetch. URL: max_ack_pending=N.
func WithMaxAckPending(n int) Option { return func(c *config) { c.maxAckPending = n } }

// WithPublishTimeout bounds the wait for each JetStream publish
// acknowledgement (default 30s); a message not acknowledged in time is
// reported failed by Publish (it may still have been stored: retrying it is
// deduplicated by its ID within the stream's duplicate window). URL:
// publish_timeout=30s.
func WithPublishTimeout(d time.Duration) Option { return func(c *config) { c.publishTimeout = d } }

// WithRequestTimeout bounds Request when its context has no deadline
// (default 10s). URL: request_timeout=10s.
func WithRequestTimeout(d time.Duration) Option { return func(c *config) { c.requestTimeout = d } }

// WithUnavailableTimeout sets how long Publish waits for the connection
// while it is down (the client reconnecting) before failing every message
// with messaging.ErrUnavailable (default messaging.DefaultUnavailableTimeout,
// 5s; the call's context may end it sooner, with an error that wraps
// ErrUnavailable too).
func WithUnavailableTimeout(d time.Duration) Option { return func(c *config) { c.unavailable = d } }

// WithExistingStreams makes the Client bind each topic to the existing
// stream that captures its subject (found with the server's
// stream-by-subject lookup) instead of creating a stream per topic; for
// legacy setups whose streams capture many subjects ("orders.>"). A topic no
// stream captures is an error. DeleteTopic then purges the topic's subject
// from the stream and deletes the topic's groups, never the stream. The
// stream's duplicate window then spans all its topics: message IDs must be
// unique across them (generated IDs are). URL: streams=bind (default
// streams=create).
func WithExistingStreams() Option { return func(c *config) { c.bindStreams = true } }

// WithStreamPrefix prefixes the names of the streams the Client creates
// (default none: topic "orders.created" is stream "orders_created"). URL:
// stream_prefix=P.
func WithStreamPrefix(p string) Option { return func(c *config) { c.streamPrefix = p } }

// WithStorage sets the storage of created streams: jetstream.FileStorage
// (default) or jetstream.MemoryStorage (not persistent across server
// restarts). URL: storage=file|memory.
func WithStorage(s jetstream.StorageType) Option { return func(c *config) { c.storage = s } }

// WithReplicas sets the replication factor of created streams (default 1;
// clustered servers only). URL: replicas=N.
func WithReplicas(n int) Option { return func(c *config) { c.replicas = n } }

// WithMaxAge sets how long created streams keep messages (default 0:
// forever). URL: max_age=24h.
func WithMaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// WithMaxBytes caps the size of created streams; the oldest messages are
// removed beyond it (default 0: no cap). URL: max_bytes=1GiB.
func WithMaxBytes(n int64) Option { return func(c *config) { c.maxBytes = n } }

// WithRetention sets the retention policy of created streams:
// jetstream.LimitsPolicy (default: keep until max age / bytes) or
// jetstream.InterestPolicy (remove a message once every consumer existing
// when it was stored acknowledged it; messages published while no group
// exists are not kept, and Stream reads then see only unacknowledged ones).
// URL: retention=limits|interest.
func WithRetention(r jetstream.RetentionPolicy) Option { return func(c *config) { c.retention = r } }

// WithDuplicateWindow sets the window in which created streams drop a
// message whose ID (Nats-Msg-Id) they have already stored (server default
// 2m). URL: duplicates=2m.
func WithDuplicateWindow(d time.Duration) Option { return func(c *config) { c.duplicates = d } }

// WithConnectOptions adds nats.go options to the connection Open makes
// (ignored by New, whose connection already exists): custom reconnect
// policy, handlers, authentication callbacks.
func WithConnectOptions(opts ...natsgo.Option) Option {
	return func(c *config) { c.connOpts = append(c.connOpts, opts...) }
}

// WithTLSConfig makes Open connect with TLS using conf.
func WithTLSConfig(conf *tls.Config) Option { return func(c *config) { c.tlsConf = conf } }
