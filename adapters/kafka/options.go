package kafka

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/optcheck"
)

// Defaults of the options (and URL parameters) of a Client.
const (
	// DefaultMaxMessageSize is the default limit on Message.Size. It leaves
	// room for the record and batch overhead under Kafka's default
	// message.max.bytes (1048588) and kafka-go's default batch size limit.
	DefaultMaxMessageSize = 1_000_000
	// DefaultPartitions is the partition count of topics the client creates.
	DefaultPartitions = 1
	// DefaultReplicationFactor (-1) leaves the replication factor of created
	// topics to the broker's default.replication.factor.
	DefaultReplicationFactor = -1
	// DefaultBatchSize is the most records Publish puts in one produce
	// request per partition. Requests are also cut at 1 MB, which binds
	// first for records over 100 bytes.
	DefaultBatchSize = 10_000
	// DefaultBatchTimeout (0) sends a request as soon as a partition is
	// idle: records that arrive while a request is in flight go in the next
	// one, which batches concurrent calls without a timer.
	DefaultBatchTimeout = 0
	// DefaultCommitInterval is how often a group subscription commits the
	// offsets its handlers finished.
	DefaultCommitInterval = 500 * time.Millisecond
	// DefaultSessionTimeout is the consumer-group session timeout.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultHeartbeatInterval is how often group members heartbeat; it also
	// bounds how long a member takes to notice a rebalance.
	DefaultHeartbeatInterval = time.Second
	// DefaultRebalanceTimeout is how long the coordinator waits for members
	// to rejoin during a rebalance (and so how long a member may take to
	// finish its in-flight handlers when its partitions are revoked).
	DefaultRebalanceTimeout = 30 * time.Second
	// DefaultJoinBackoff is the pause before rejoining a group after an error
	// (a cut connection, an unreachable coordinator): it bounds how soon a
	// member is back after the broker is, at the cost of a join attempt (and
	// a logged warning) per pause while the broker stays unreachable.
	DefaultJoinBackoff = 500 * time.Millisecond
	// DefaultMetadataTTL bounds how long the client's transport keeps its
	// metadata (see WithMetadataTTL).
	DefaultMetadataTTL = time.Second
	// DefaultPrefetch is the number of messages a subscription fetches ahead
	// of its handlers when the Prefetch option is not given.
	DefaultPrefetch = 256
)

// Option configures a Client built by New or Open. Each option checks its
// argument: an invalid one makes New or Open fail with an error wrapping
// messaging.ErrInvalidOption that names the option. Options apply in
// order; a later one overrides an earlier one of the same kind.
type Option func(*config) error

type config struct {
	unavailable time.Duration // how long Publish retries an unreachable broker
	dialer      *kafkago.Dialer
	transport   kafkago.RoundTripper
	writer      *kafkago.Writer
	readerTune  func(*kafkago.ReaderConfig)

	tls      *tls.Config
	sasl     sasl.Mechanism
	clientID string

	partitions        int
	replicationFactor int
	autoCreate        bool

	requiredAcks kafkago.RequiredAcks
	batchSize    int
	batchTimeout time.Duration
	writeTimeout time.Duration
	compression  kafkago.Compression

	maxMessageSize    int
	callerIDs         bool // WithCallerIDs: Publish assigns no ID nor Time
	commitInterval    time.Duration
	sessionTimeout    time.Duration
	heartbeatInterval time.Duration
	rebalanceTimeout  time.Duration
	joinBackoff       time.Duration
	metadataTTL       time.Duration
	maxWait           time.Duration

	logger *slog.Logger

	// set names the options given, for the conflicts newConfig rejects
	set map[string]bool
}

// newConfig applies opts in order and returns the first error, then
// rejects options that conflict.
func newConfig(opts []Option) (config, error) {
	c := config{
		clientID:          "msgkit",
		partitions:        DefaultPartitions,
		replicationFactor: DefaultReplicationFactor,
		autoCreate:        true,
		requiredAcks:      kafkago.RequireAll,
		batchSize:         DefaultBatchSize,
		batchTimeout:      DefaultBatchTimeout,
		writeTimeout:      10 * time.Second,
		maxMessageSize:    DefaultMaxMessageSize,
		commitInterval:    DefaultCommitInterval,
		sessionTimeout:    DefaultSessionTimeout,
		heartbeatInterval: DefaultHeartbeatInterval,
		rebalanceTimeout:  DefaultRebalanceTimeout,
		joinBackoff:       DefaultJoinBackoff,
		metadataTTL:       DefaultMetadataTTL,
		unavailable:       messaging.DefaultUnavailableTimeout,
		maxWait:           500 * time.Millisecond,
		logger:            slog.Default(),
		set:               map[string]bool{},
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

// conflicts rejects options valid alone that contradict each other.
func (c *config) conflicts() error {
	if c.sessionTimeout <= c.heartbeatInterval {
		return fmt.Errorf("kafka: WithHeartbeatInterval(%v) and WithSessionTimeout(%v): the heartbeat interval must be below the session timeout: %w",
			c.heartbeatInterval, c.sessionTimeout, messaging.ErrInvalidOption)
	}
	if c.writer != nil {
		for _, o := range []string{"WithBatchSize", "WithBatchTimeout", "WithRequiredAcks", "WithCompression"} {
			if c.set[o] {
				return fmt.Errorf("kafka: WithWriter and %s: the given writer's own settings apply, not %s: %w", o, o, messaging.ErrInvalidOption)
			}
		}
	}
	if c.set["WithMetadataTTL"] && (c.transport != nil || c.writer != nil && c.writer.Transport != nil) {
		other := "WithTransport"
		if c.transport == nil {
			other = "WithWriter"
		}
		return fmt.Errorf("kafka: WithMetadataTTL and %s: the TTL applies only to the transport the client builds: %w", other, messaging.ErrInvalidOption)
	}
	return nil
}

// pkg prefixes the errors of invalid options.
const pkg = "kafka"

// invalid returns the error of option name given value.
func invalid(name string, value any, why string) error {
	return optcheck.Invalid(pkg, name, value, why)
}

// positive returns an option setting *field to d, which must be positive.
func positive(name string, d time.Duration, field func(*config) *time.Duration) Option {
	return marked(name, optcheck.Positive(pkg, name, d, field))
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

// required returns an option that stores v with store, and fails when v
// is nil.
func required[T comparable](name string, v T, what string, store func(*config, T)) Option {
	return func(c *config) error {
		var zero T
		if v == zero {
			return invalid(name, v, what+" is required")
		}
		store(c, v)
		c.set[name] = true
		return nil
	}
}

// WithDialer makes readers and consumer groups connect with d (its TLS, SASL
// and timeouts; nil is invalid). By default the client builds a dialer from
// WithTLSConfig, WithSASL and WithClientID.
func WithDialer(d *kafkago.Dialer) Option {
	return required("WithDialer", d, "a dialer", func(c *config, d *kafkago.Dialer) { c.dialer = d })
}

// WithTransport makes produce and admin requests (topic creation, offset
// lookups) use t (nil is invalid). By default the client builds a
// kafkago.Transport from WithTLSConfig, WithSASL, WithClientID and
// WithMetadataTTL; WithMetadataTTL conflicts with WithTransport.
func WithTransport(t kafkago.RoundTripper) Option {
	return required("WithTransport", t, "a transport", func(c *config, t kafkago.RoundTripper) { c.transport = t })
}

// WithWriter makes Publish use an existing writer (one WriteMessages call per
// Publish) instead of the client's own producer, so code that already owns a
// *kafkago.Writer can move to this API one call site at a time. The writer
// must not be nil and its Topic must be empty (each message names its
// topic); its Addr, Balancer, batching and RequiredAcks are used as they
// are, so the guarantees of Publish are those the writer's settings give
// (keep Async false). WithBatchSize, WithBatchTimeout, WithRequiredAcks and
// WithCompression do not apply to it: they conflict with WithWriter. The
// client does not close a writer it was given.
func WithWriter(w *kafkago.Writer) Option {
	return func(c *config) error {
		switch {
		case w == nil:
			return invalid("WithWriter", w, "a writer is required")
		case w.Topic != "":
			return invalid("WithWriter", "writer for topic "+w.Topic, "the writer's Topic must be empty (the client sets the topic per message)")
		}
		c.writer = w
		c.set["WithWriter"] = true
		return nil
	}
}

// WithReaderConfig lets fn adjust the kafkago.ReaderConfig of every
// partition reader the client starts (MinBytes, MaxBytes, MaxWait,
// QueueCapacity, IsolationLevel, loggers...; nil is invalid, and so is an
// adjusted config kafka-go rejects). The client sets Brokers, Topic,
// Partition and Dialer itself after fn and never uses GroupID (offsets are
// managed by the client).
func WithReaderConfig(fn func(*kafkago.ReaderConfig)) Option {
	return func(c *config) error {
		if fn == nil {
			return invalid("WithReaderConfig", "<nil>", "a function is required")
		}
		c.readerTune = fn
		return nil
	}
}

// WithTLSConfig connects over TLS with conf (nil is invalid).
func WithTLSConfig(conf *tls.Config) Option {
	return required("WithTLSConfig", conf, "a TLS configuration", func(c *config, conf *tls.Config) { c.tls = conf })
}

// WithSASL authenticates with m (see kafka-go's sasl/plain and sasl/scram;
// nil is invalid).
func WithSASL(m sasl.Mechanism) Option {
	return required("WithSASL", m, "a SASL mechanism", func(c *config, m sasl.Mechanism) { c.sasl = m })
}

// WithClientID sets the client ID sent to the brokers (default "msgkit";
// empty is invalid).
func WithClientID(id string) Option {
	return required("WithClientID", id, "a client ID", func(c *config, id string) { c.clientID = id })
}

// WithPartitions sets the partition count of topics the client creates
// (default 1, at least 1). Partitions bound a group's parallelism across
// members.
func WithPartitions(n int) Option {
	return optcheck.AtLeast(pkg, "WithPartitions", n, 1, func(c *config) *int { return &c.partitions })
}

// WithReplicationFactor sets the replication factor of topics the client
// creates: at least 1, or -1 (the default) for the broker's default.
func WithReplicationFactor(n int) Option {
	return func(c *config) error {
		if n == 0 || n < -1 {
			return invalid("WithReplicationFactor", n, "must be at least 1 (or -1 for the broker default)")
		}
		c.replicationFactor = n
		return nil
	}
}

// WithAutoCreateTopics says whether Publish, Subscribe and Read create a
// missing topic (default true). When false, a missing topic is an error
// until Provision creates it.
func WithAutoCreateTopics(on bool) Option {
	return func(c *config) error {
		c.autoCreate = on
		return nil
	}
}

// WithRequiredAcks sets the acknowledgement Publish waits for (default
// kafkago.RequireAll: every in-sync replica; or RequireOne, RequireNone).
// It conflicts with WithWriter.
func WithRequiredAcks(a kafkago.RequiredAcks) Option {
	return func(c *config) error {
		switch a {
		case kafkago.RequireAll, kafkago.RequireOne, kafkago.RequireNone:
		default:
			return invalid("WithRequiredAcks", int(a), "want kafkago.RequireAll, RequireOne or RequireNone")
		}
		c.requiredAcks = a
		c.set["WithRequiredAcks"] = true
		return nil
	}
}

// WithBatchSize sets the most records per produce request and partition
// (default 10,000, at least 1; requests are also cut at 1 MB). It conflicts
// with WithWriter.
func WithBatchSize(n int) Option {
	return marked("WithBatchSize", optcheck.AtLeast(pkg, "WithBatchSize", n, 1, func(c *config) *int { return &c.batchSize }))
}

// WithBatchTimeout sets how long a partition's sender lingers for more
// records before sending a request that is not full (default 0: send at once;
// records arriving meanwhile go in the next request; negative is invalid).
// It conflicts with WithWriter.
func WithBatchTimeout(d time.Duration) Option {
	return marked("WithBatchTimeout", optcheck.NotNegative(pkg, "WithBatchTimeout", d, func(c *config) *time.Duration { return &c.batchTimeout }))
}

// WithCompression compresses produced batches (default none; or
// kafkago.Gzip, Snappy, Lz4, Zstd). It conflicts with WithWriter.
func WithCompression(codec kafkago.Compression) Option {
	return func(c *config) error {
		switch codec {
		case 0, kafkago.Gzip, kafkago.Snappy, kafkago.Lz4, kafkago.Zstd:
		default:
			return invalid("WithCompression", int(codec), "want kafkago.Gzip, Snappy, Lz4, Zstd or 0 (none)")
		}
		c.compression = codec
		c.set["WithCompression"] = true
		return nil
	}
}

// WithMaxMessageSize sets the largest Message.Size Publish accepts (default
// 1,000,000); 0 means no client-side limit (the broker's still applies);
// negative is invalid.
func WithMaxMessageSize(n int) Option {
	return optcheck.NotNegative(pkg, "WithMaxMessageSize", n, func(c *config) *int { return &c.maxMessageSize })
}

// WithCallerIDs makes Publish and PublishAsync write the ID and Time their
// caller set, and nothing when it set none: no ID nor Time is generated,
// and a message with nothing but a payload (and key) is a record with no
// header, as a plain kafka-go producer writes it; its timestamp is the time
// the producer sends it. Capabilities().PublishAssignsID is then false.
//
// What it changes: a consumer (and Read) gets such a message under its
// place in the log, "topic/partition/offset" (the same on every
// redelivery, so idempotent consumers still work), as ID. Publish's retries
// after a lost acknowledgement may write a record twice either way (the
// adapter's producer is not idempotent); with WithCallerIDs the two copies
// have different IDs, so a consumer cannot tell them apart as duplicates.
// URL: ids=caller (default ids=assign).
func WithCallerIDs() Option {
	return func(c *config) error {
		c.callerIDs = true
		return nil
	}
}

// WithCommitInterval sets how often group subscriptions commit finished
// offsets (default 500ms; must be positive). Offsets are also committed
// when a partition is revoked and when a subscription closes; a crash
// redelivers at most what finished during the last interval.
func WithCommitInterval(d time.Duration) Option {
	return positive("WithCommitInterval", d, func(c *config) *time.Duration { return &c.commitInterval })
}

// WithUnavailableTimeout sets how long a record given to Publish may wait
// for its acknowledgement while the broker cannot be reached (broken or
// refused connections, leader changes, no answer) before it fails with
// messaging.ErrUnavailable (default messaging.DefaultUnavailableTimeout,
// 5s; must be positive; the call's context may end it sooner). It runs from
// when the Publish call began (for PublishAsync, from when the message was
// queued), including the time the record waited behind the partition's
// earlier requests, or from the partition's last acknowledged request if
// that is later: records queued behind a broker that is slow but
// acknowledging wait their turn. Retries back off from 50ms to 250ms, so publishing
// resumes within about 250ms of the broker's return. Provision,
// DeleteTopic, Inspect, Topics and the setup of Subscribe and Read retry
// an unreachable broker the same way for d from the call's start (their
// context may end them sooner, with its error), then fail with
// ErrUnavailable.
func WithUnavailableTimeout(d time.Duration) Option {
	return positive("WithUnavailableTimeout", d, func(c *config) *time.Duration { return &c.unavailable })
}

// WithSessionTimeout sets the consumer-group session timeout: how long a
// member that stopped heartbeating keeps its partitions (default 10s; must
// be above the heartbeat interval; the broker bounds it with
// group.min/max.session.timeout.ms).
func WithSessionTimeout(d time.Duration) Option {
	return positive("WithSessionTimeout", d, func(c *config) *time.Duration { return &c.sessionTimeout })
}

// WithHeartbeatInterval sets the group heartbeat interval (default 1s; must
// be positive and below the session timeout); a member notices a rebalance
// at its next heartbeat.
func WithHeartbeatInterval(d time.Duration) Option {
	return positive("WithHeartbeatInterval", d, func(c *config) *time.Duration { return &c.heartbeatInterval })
}

// WithRebalanceTimeout sets how long the coordinator waits for members to
// rejoin during a rebalance (default 30s; must be positive).
func WithRebalanceTimeout(d time.Duration) Option {
	return positive("WithRebalanceTimeout", d, func(c *config) *time.Duration { return &c.rebalanceTimeout })
}

// WithJoinBackoff sets the pause before rejoining a group after an error
// (default 500ms; must be positive; see DefaultJoinBackoff).
func WithJoinBackoff(d time.Duration) Option {
	return positive("WithJoinBackoff", d, func(c *config) *time.Duration { return &c.joinBackoff })
}

// WithMetadataTTL sets how long the transport the client builds keeps its
// cluster metadata (default 1s; must be positive). kafka-go refreshes it
// only on this timer, at a random point within it, never after an error, so
// the TTL bounds how long Publish sends a partition's records to a leader
// that is gone or was replaced; each client makes a metadata request every
// TTL/2 on average. Publish also keeps a topic's partition count this
// long, so partitions added to a topic are used within about twice the TTL.
// It conflicts with a transport given with WithTransport or WithWriter,
// which it cannot apply to. URL: metadata_ttl.
func WithMetadataTTL(d time.Duration) Option {
	return positive("WithMetadataTTL", d, func(c *config) *time.Duration { return &c.metadataTTL })
}

// WithLogger sets where the client reports what it cannot return to a caller
// (commit failures, messages given up after MaxAttempts, group errors).
// Default slog.Default(); nil is invalid.
func WithLogger(l *slog.Logger) Option {
	return required("WithLogger", l, "a logger", func(c *config, l *slog.Logger) { c.logger = l })
}
