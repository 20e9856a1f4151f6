package kafka

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/msgkit/messaging"
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

// Option configures a Client built by New or Open.
type Option func(*config)

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
	commitInterval    time.Duration
	sessionTimeout    time.Duration
	heartbeatInterval time.Duration
	rebalanceTimeout  time.Duration
	joinBackoff       time.Duration
	metadataTTL       time.Duration
	maxWait           time.Duration

	logger *slog.Logger
}

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
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	switch {
	case c.partitions < 1:
		return c, fmt.Errorf("%w: partitions %d: must be at least 1", messaging.ErrInvalidOption, c.partitions)
	case c.replicationFactor == 0 || c.replicationFactor < -1:
		return c, fmt.Errorf("%w: replication factor %d: must be at least 1 (or -1 for the broker default)", messaging.ErrInvalidOption, c.replicationFactor)
	case c.batchSize < 1:
		return c, fmt.Errorf("%w: batch size %d: must be at least 1", messaging.ErrInvalidOption, c.batchSize)
	case c.batchTimeout < 0:
		return c, fmt.Errorf("%w: batch timeout %v: must not be negative", messaging.ErrInvalidOption, c.batchTimeout)
	case c.commitInterval <= 0:
		return c, fmt.Errorf("%w: commit interval %v: must be positive", messaging.ErrInvalidOption, c.commitInterval)
	case c.heartbeatInterval <= 0 || c.sessionTimeout <= c.heartbeatInterval:
		return c, fmt.Errorf("%w: heartbeat interval %v must be positive and below the session timeout %v", messaging.ErrInvalidOption, c.heartbeatInterval, c.sessionTimeout)
	case c.rebalanceTimeout <= 0 || c.joinBackoff <= 0 || c.metadataTTL <= 0 || c.writeTimeout <= 0 || c.maxWait <= 0 || c.unavailable <= 0:
		return c, fmt.Errorf("%w: timeouts must be positive", messaging.ErrInvalidOption)
	case c.maxMessageSize < 0:
		return c, fmt.Errorf("%w: max message size %d: must not be negative", messaging.ErrInvalidOption, c.maxMessageSize)
	case c.writer != nil && c.writer.Topic != "":
		return c, fmt.Errorf("%w: WithWriter: the writer's Topic must be empty (the client sets the topic per message)", messaging.ErrInvalidOption)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	switch c.requiredAcks {
	case kafkago.RequireAll, kafkago.RequireOne, kafkago.RequireNone:
	default:
		return c, fmt.Errorf("%w: required acks %d", messaging.ErrInvalidOption, c.requiredAcks)
	}
	return c, nil
}

// WithDialer makes readers and consumer groups connect with d (its TLS, SASL
// and timeouts). By default the client builds a dialer from WithTLS, WithSASL
// and WithClientID.
func WithDialer(d *kafkago.Dialer) Option { return func(c *config) { c.dialer = d } }

// WithTransport makes produce and admin requests (topic creation, offset
// lookups) use t. By default the client builds a kafkago.Transport
// from WithTLS, WithSASL and WithClientID.
func WithTransport(t kafkago.RoundTripper) Option { return func(c *config) { c.transport = t } }

// WithWriter makes Publish use an existing writer (one WriteMessages call per
// Publish) instead of the client's own producer, so code that already owns a
// *kafkago.Writer can move to this API one call site at a time. The writer's
// Topic must be empty (each message names its topic); its Addr, Balancer,
// batching and RequiredAcks are used as they are, so the guarantees of
// Publish are those the writer's settings give (keep Async false), and
// WithBatchSize, WithBatchTimeout, WithRequiredAcks and WithCompression do
// not apply. The client does not close a writer it was given.
func WithWriter(w *kafkago.Writer) Option { return func(c *config) { c.writer = w } }

// WithReaderConfig lets fn adjust the kafkago.ReaderConfig of every
// partition reader the client starts (MinBytes, MaxBytes, MaxWait,
// QueueCapacity, IsolationLevel, loggers...). The client sets Brokers, Topic,
// Partition and Dialer itself after fn and never uses GroupID (offsets are
// managed by the client).
func WithReaderConfig(fn func(*kafkago.ReaderConfig)) Option {
	return func(c *config) { c.readerTune = fn }
}

// WithTLS connects over TLS with cfg.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithSASL authenticates with m (see kafka-go's sasl/plain and sasl/scram).
func WithSASL(m sasl.Mechanism) Option { return func(c *config) { c.sasl = m } }

// WithClientID sets the client ID sent to the brokers (default "msgkit").
func WithClientID(id string) Option { return func(c *config) { c.clientID = id } }

// WithPartitions sets the partition count of topics the client creates
// (default 1). Partitions bound a group's parallelism across members.
func WithPartitions(n int) Option { return func(c *config) { c.partitions = n } }

// WithReplicationFactor sets the replication factor of topics the client
// creates; -1 (the default) uses the broker's default.
func WithReplicationFactor(n int) Option { return func(c *config) { c.replicationFactor = n } }

// WithAutoCreateTopics says whether Publish, Subscribe and Read create a
// missing topic (default true). When false, a missing topic is an error
// until Provision creates it.
func WithAutoCreateTopics(on bool) Option { return func(c *config) { c.autoCreate = on } }

// WithRequiredAcks sets the acknowledgement Publish waits for (default
// kafkago.RequireAll: every in-sync replica).
func WithRequiredAcks(a kafkago.RequiredAcks) Option { return func(c *config) { c.requiredAcks = a } }

// WithBatchSize sets the most records per produce request and partition
// (default 10,000; requests are also cut at 1 MB).
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithBatchTimeout sets how long a partition's sender lingers for more
// records before sending a request that is not full (default 0: send at once;
// records arriving meanwhile go in the next request).
func WithBatchTimeout(d time.Duration) Option { return func(c *config) { c.batchTimeout = d } }

// WithCompression compresses produced batches (default none).
func WithCompression(codec kafkago.Compression) Option {
	return func(c *config) { c.compression = codec }
}

// WithMaxMessageSize sets the largest Message.Size Publish accepts (default
// 1,000,000); 0 means no client-side limit (the broker's still applies).
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMessageSize = n } }

// WithCommitInterval sets how often group subscriptions commit finished
// offsets (default 500ms). Offsets are also committed when a partition is
// revoked and when a subscription closes; a crash redelivers at most what
// finished during the last interval.
func WithCommitInterval(d time.Duration) Option { return func(c *config) { c.commitInterval = d } }

// WithUnavailableTimeout sets how long Publish keeps retrying a request
// that failed because the broker could not be reached (broken or refused
// connections, leader changes) before it fails the records with
// messaging.ErrUnavailable (default messaging.DefaultUnavailableTimeout,
// 5s; the call's context may end it sooner). Retries back off from 50ms to
// 250ms, so publishing resumes within about 250ms of the broker's return.
func WithUnavailableTimeout(d time.Duration) Option { return func(c *config) { c.unavailable = d } }

// WithSessionTimeout sets the consumer-group session timeout: how long a
// member that stopped heartbeating keeps its partitions (default 10s; the
// broker bounds it with group.min/max.session.timeout.ms).
func WithSessionTimeout(d time.Duration) Option { return func(c *config) { c.sessionTimeout = d } }

// WithHeartbeatInterval sets the group heartbeat interval (default 1s); a
// member notices a rebalance at its next heartbeat.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(c *config) { c.heartbeatInterval = d }
}

// WithRebalanceTimeout sets how long the coordinator waits for members to
// rejoin during a rebalance (default 30s).
func WithRebalanceTimeout(d time.Duration) Option {
	return func(c *config) { c.rebalanceTimeout = d }
}

// WithJoinBackoff sets the pause before rejoining a group after an error
// (default 500ms; see DefaultJoinBackoff).
func WithJoinBackoff(d time.Duration) Option { return func(c *config) { c.joinBackoff = d } }

// WithMetadataTTL sets how long the transport the client builds keeps its
// cluster metadata (default 1s). kafka-go refreshes it only on this timer,
// at a random point within it, never after an error, so the TTL bounds how
// long Publish sends a partition's records to a leader that is gone or was
// replaced; each client makes a metadata request every TTL/2 on average.
// Without effect on a transport given with WithTransport or WithWriter.
// URL: metadata_ttl.
func WithMetadataTTL(d time.Duration) Option { return func(c *config) { c.metadataTTL = d } }

// WithLogger sets where the client reports what it cannot return to a caller
// (commit failures, messages given up after MaxAttempts, group errors).
// Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }
