package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/internal/producer"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
	"github.com/msgkit/messaging/internal/asyncpub"
	"github.com/msgkit/messaging/internal/unavail"
)

func init() {
	messaging.Register("kafka", func(ctx context.Context, u *url.URL, s messaging.OpenSettings) (messaging.Client, error) {
		var opts []Option
		if s.Logger != nil {
			opts = append(opts, WithLogger(s.Logger))
		}
		c, err := open(ctx, u, opts)
		if err != nil {
			return nil, err
		}
		return c, nil
	})
}

// Client publishes to and consumes from a Kafka cluster through kafka-go. It
// implements messaging.Client, messaging.BatchConsumer, messaging.Stream,
// messaging.Provisioner, messaging.TopicDeleter and messaging.Shutdowner,
// and is safe for concurrent use. Its consumer side is the library's engine
// (package engine) over the driver in driver.go; see the package
// documentation for what Subscribe and Read do on Kafka.
type Client struct {
	*engine.Consumer // Subscribe, SubscribeBatch, Read, Shutdown
	// closed is set by Close once the consumer side has stopped and
	// PublishAsync's queue is closed: the handlers Close (or a Shutdown)
	// waits for may still publish.
	closed atomic.Bool

	cfg       config
	brokers   []string
	dialer    *kafkago.Dialer
	transport kafkago.RoundTripper
	ownTrans  *kafkago.Transport // closed by Close when the client built it
	admin     *kafkago.Client
	producer  *producer.Producer // Publish, unless WithWriter gave a writer
	writer    *kafkago.Writer    // the writer WithWriter gave (not closed by Close)

	readers sync.WaitGroup // kafka-go readers closing in the background
	async   asyncpub.Lazy  // PublishAsync (publish_async.go)

	topicsMu sync.Mutex
	topics   map[string]bool            // topics known to exist
	groups   map[string]map[string]bool // topic -> groups this client used
	// partitionCounts (topic -> partitionCount) keeps the partition count
	// Publish found for a topic, for metadata_ttl: a Publish within it
	// needs no lookup (see publishChecked).
	partitionCounts sync.Map
}

// partitionCount is a topic's partition count and until when Publish uses
// it without looking again.
type partitionCount struct {
	n     int
	until time.Time
}

var (
	_ messaging.Client        = (*Client)(nil)
	_ messaging.BatchConsumer = (*Client)(nil)
	_ messaging.Stream        = (*Client)(nil)
	_ messaging.Provisioner   = (*Client)(nil)
	_ messaging.TopicDeleter  = (*Client)(nil)
	_ messaging.Shutdowner    = (*Client)(nil)
)

// New returns a client of the cluster reachable at brokers ("host:port"
// seeds). It does not contact the cluster; the first call that needs it
// does. Options can hand in existing kafka-go pieces (WithDialer,
// WithTransport, WithWriter).
func New(brokers []string, opts ...Option) (*Client, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var seeds []string
	for _, b := range brokers {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("kafka: %w: no broker address", messaging.ErrInvalidOption)
	}
	for _, b := range seeds {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("kafka: %w: broker address %q: want host:port", messaging.ErrInvalidOption, b)
		}
	}
	if cfg.readerTune != nil {
		rc := kafkago.ReaderConfig{MinBytes: 1, MaxBytes: max(10<<20, 2*cfg.maxMessageSize)}
		cfg.readerTune(&rc)
		rc.Brokers, rc.Topic, rc.GroupID = seeds, "probe", ""
		if err := rc.Validate(); err != nil {
			return nil, fmt.Errorf("kafka: WithReaderConfig(fn): the reader config fn leaves is invalid: %v: %w", err, messaging.ErrInvalidOption)
		}
	}
	c := &Client{cfg: cfg, brokers: seeds, topics: map[string]bool{}, groups: map[string]map[string]bool{}}
	c.dialer = cfg.dialer
	if c.dialer == nil {
		c.dialer = &kafkago.Dialer{
			ClientID:      cfg.clientID,
			Timeout:       10 * time.Second,
			DualStack:     true,
			TLS:           cfg.tls,
			SASLMechanism: cfg.sasl,
		}
	}
	c.transport = cfg.transport
	if c.transport == nil && cfg.writer != nil && cfg.writer.Transport != nil {
		c.transport = cfg.writer.Transport
	}
	if c.transport == nil {
		c.ownTrans = &kafkago.Transport{
			ClientID:    cfg.clientID,
			DialTimeout: 10 * time.Second,
			TLS:         cfg.tls,
			SASL:        cfg.sasl,
			MetadataTTL: cfg.metadataTTL, // see WithMetadataTTL
		}
		c.transport = c.ownTrans
	}
	addr := brokerAddr(seeds)
	c.admin = &kafkago.Client{Addr: addr, Transport: c.transport, Timeout: 30 * time.Second}
	if cfg.writer != nil {
		c.writer = cfg.writer
	} else {
		set := producer.Settings{
			Acks: cfg.requiredAcks, Compression: cfg.compression, MaxRecords: cfg.batchSize,
			Linger: cfg.batchTimeout, Unavailable: cfg.unavailable,
		}
		if cfg.autoCreate {
			set.TopicMissing = c.recreateTopic
		} else {
			set.TopicMissing = c.topicNotFound
		}
		c.producer = producer.New(&kafkago.Client{Addr: addr, Transport: c.transport, Timeout: cfg.writeTimeout}, set)
	}
	c.Consumer = engine.New(kafkaDriver{c}, engine.Options{Name: "kafka", Logger: cfg.logger, DefaultPrefetch: DefaultPrefetch})
	return c, nil
}

// Capabilities reports what the Kafka adapter guarantees; see the package
// documentation for what it lacks and why. Persistent holds only when the
// writer waits for all in-sync replicas (acks=all, the default; a writer
// given with WithWriter must set RequiredAcks to kafkago.RequireAll).
func (c *Client) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{
		Persistent:   c.requiredAcks() == kafkago.RequireAll,
		Groups:       true,
		Replay:       true,
		ReplayByTime: true,
		GroupStartAt: true,
		PerKeyOrder:  true,
		// No per-message acknowledgement: the engine redelivers nacked
		// messages in process and the driver settles Ack, Term and Release.
		BrokerAttempts: false,
		MaxMessageSize: c.cfg.maxMessageSize,

		PublishAssignsID: !c.cfg.callerIDs, // preparePublish
	}
}

// Publish writes msgs to topic and returns once the brokers acknowledged
// every record (with the configured RequiredAcks, all in-sync replicas by
// default). The records of one partition go in one produce request when the
// partition is idle (several requests only past 1 MB or the batch size);
// records of concurrent calls queued while a request is in flight share the
// next one. Records with the same Key go to the same partition (murmur2
// hash, as the Java client does), in order; the keyless records of a call
// go together to one partition, successive calls to successive partitions.
// A missing topic is created first unless auto-creation is off. Failures
// are reported as a *messaging.PublishError naming the messages that were
// not acknowledged (they may still have been written). With WithWriter, the
// records go to the given writer in one WriteMessages call instead.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if c.closed.Load() {
		return fmt.Errorf("kafka: publish: %w", messaging.ErrClosed)
	}
	entry := time.Now()
	if err := c.preparePublish(topic, msgs); err != nil {
		return err
	}
	return c.publishChecked(ctx, entry, nil, topic, msgs)
}

// preparePublish checks msgs for Publish and, unless WithCallerIDs, gives
// them their IDs and Times.
func (c *Client) preparePublish(topic string, msgs []*messaging.Message) error {
	if c.cfg.callerIDs {
		return driver.CheckPublish(topic, msgs, c.cfg.maxMessageSize)
	}
	return driver.PreparePublish(topic, msgs, c.cfg.maxMessageSize)
}

// publishChecked is Publish after its checks: PublishAsync's batches come
// here, each message checked (and given its ID) by validateOne already.
// Message i fails with messaging.ErrUnavailable once the unavailable
// timeout has passed since it entered, unacknowledged: since entered[i], or
// since entry for all when entered is nil (see producer.WriteEntered).
func (c *Client) publishChecked(ctx context.Context, entry time.Time, entered []time.Time, topic string, msgs []*messaging.Message) error {
	if c.closed.Load() {
		return fmt.Errorf("kafka: publish: %w", messaging.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	recs, err := toRecords(topic, msgs)
	if err != nil {
		return fmt.Errorf("kafka: publish to %s: %w", topic, err)
	}
	if len(entered) > 0 {
		entry = entered[0]
	}
	if c.writer == nil {
		if v, ok := c.partitionCounts.Load(topic); ok {
			if pc := v.(partitionCount); time.Now().Before(pc.until) {
				return c.producer.WriteEntered(ctx, entry, entered, topic, pc.n, recs)
			}
		}
	}
	// The topic's lookups (creating it, its metadata when not in kafka-go's
	// cache) wait for a broker that does not answer until the unavailable
	// deadline, as produce requests do, whatever ctx allows; and never less
	// than unavailable_timeout from now, so that messages that waited
	// behind a slow broker are not failed by a lookup that has no time.
	deadline := asyncpub.Later(entry, time.Now()).Add(c.cfg.unavailable)
	lookup, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// The socket's deadline is the lookup's: its i/o timeout may come
	// before lookup.Err is set.
	expired := func() bool { return lookup.Err() != nil || !time.Now().Before(deadline) }
	unavailable := func(err error) error {
		if err != nil && ctx.Err() == nil && expired() && !errors.Is(err, messaging.ErrUnavailable) {
			return fmt.Errorf("%w: %w", messaging.ErrUnavailable, err)
		}
		return err
	}
	if err := c.ensureTopic(lookup, topic, c.cfg.autoCreate); err != nil {
		return producer.AllFailed(len(msgs), fmt.Errorf("kafka: publish to %s: %w", topic, unavailable(err)))
	}
	if c.writer != nil {
		return c.writeMessages(ctx, topic, recs)
	}
	n, err := c.writePartitions(lookup, topic)
	if err != nil && producer.TopicMissing(err) {
		// Another client deleted the topic since this one made sure of it.
		if !c.cfg.autoCreate {
			if nf := c.topicNotFound(lookup, topic); nf != nil {
				return producer.AllFailed(len(msgs), fmt.Errorf("kafka: publish to %s: %w", topic, nf))
			}
		} else if err = c.recreateTopic(lookup, topic); err == nil {
			n, err = c.writePartitions(lookup, topic)
		}
	}
	if err != nil && producer.Retriable(err) && !expired() {
		// The broker is unreachable: wait for it until the lookup's
		// deadline.
		n, err = backoff.Retry(lookup, func() (int, error) {
			n, err := c.writePartitions(lookup, topic)
			if err != nil && !producer.Retriable(err) {
				return 0, backoff.Permanent(err)
			}
			return n, err
		}, backoff.WithBackOff(producer.PublishBackOff()), backoff.WithMaxElapsedTime(0))
	}
	if err != nil && (producer.Retriable(err) || ctx.Err() != nil || expired()) && !errors.Is(err, messaging.ErrUnavailable) {
		err = fmt.Errorf("%w: %w", messaging.ErrUnavailable, err)
	}
	if err != nil {
		return producer.AllFailed(len(msgs), fmt.Errorf("kafka: publish to %s: %w", topic, err))
	}
	// As long as the transport keeps its metadata: a partition count that
	// changes is seen within about twice metadata_ttl, as it would be
	// through the transport's cache alone; a topic deleted meanwhile is
	// recreated by the producer (Settings.TopicMissing).
	c.partitionCounts.Store(topic, partitionCount{n: n, until: time.Now().Add(c.cfg.metadataTTL)})
	return c.producer.WriteEntered(ctx, entry, entered, topic, n, recs)
}

// writeMessages publishes through the writer given with WithWriter.
func (c *Client) writeMessages(ctx context.Context, topic string, recs []kafkago.Message) error {
	err := c.writer.WriteMessages(ctx, recs...)
	if err == nil {
		return nil
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(recs) {
		pe := &messaging.PublishError{Errs: make([]error, len(recs))}
		for i, e := range werrs {
			switch {
			case e == nil:
			case errors.Is(e, kafkago.MessageSizeTooLarge):
				pe.Errs[i] = fmt.Errorf("kafka: publish to %s: %w: the record with its headers exceeds the broker's message.max.bytes: %w", topic, messaging.ErrMessageTooLarge, e)
			default:
				pe.Errs[i] = fmt.Errorf("kafka: publish to %s: %w", topic, e)
			}
		}
		return pe
	}
	var tooLarge kafkago.MessageTooLargeError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, kafkago.MessageSizeTooLarge):
		err = fmt.Errorf("%w: %w", messaging.ErrMessageTooLarge, err)
	case errors.Is(err, io.ErrClosedPipe):
		err = messaging.ErrClosed
	}
	return producer.AllFailed(len(recs), fmt.Errorf("kafka: publish to %s: %w", topic, err))
}

// requiredAcks is the acknowledgement Publish waits for.
func (c *Client) requiredAcks() kafkago.RequiredAcks {
	if c.writer != nil {
		return c.writer.RequiredAcks
	}
	return c.cfg.requiredAcks
}

// Provision creates topic (with the configured partitions and replication)
// and, for each group, commits a starting offset (the earliest) on every
// partition that has none, so the group exists and keeps everything
// published from now on. It is idempotent and never moves a group that
// already has offsets.
func (c *Client) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "provision", topic, groups...); err != nil {
		return err
	}
	return c.whileUnreachable(ctx, "provision "+topic, func(ctx context.Context) error {
		if err := c.ensureTopic(ctx, topic, true); err != nil {
			return fmt.Errorf("kafka: provision %s: %w", topic, err)
		}
		for _, g := range groups {
			if _, err := c.initGroup(ctx, topic, g, messaging.Earliest); err != nil {
				return fmt.Errorf("kafka: provision %s group %s: %w", topic, g, err)
			}
		}
		return nil
	})
}

// whileUnreachable bounds a topology or admin call as Publish is bounded:
// it runs f (the call's requests) and runs it again while the broker
// cannot be reached (producer.Retriable) and the client is open, until f
// succeeds or fails otherwise, ctx ends (the error then wraps ctx's), or
// unavailable_timeout has passed since the call began (the error then
// wraps messaging.ErrUnavailable); see unavail.Retry. op names the call
// in those two errors.
func (c *Client) whileUnreachable(ctx context.Context, op string, f func(ctx context.Context) error) error {
	return unavail.Retry(ctx, "kafka", op, c.cfg.unavailable, c.unreachable, f)
}

// unreachable: err says the broker could not be reached, and the client
// is open (whileUnreachable's retries). An error code in a broker's answer
// (a missing topic, a leader election: kafka-go calls many of them
// temporary) is not: the broker is there, and the call says what it said.
func (c *Client) unreachable(err error) bool {
	var answered kafkago.Error
	if errors.As(err, &answered) {
		return false
	}
	return producer.Retriable(err) && !c.closed.Load()
}

// DeleteTopic deletes topic. The brokers drop every group's committed
// offsets for it; the groups this client subscribed or provisioned on the
// topic are deleted too when they have no other members. Deleting a missing
// topic is not an error.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "delete topic", topic); err != nil {
		return err
	}
	c.topicsMu.Lock()
	delete(c.topics, topic)
	c.partitionCounts.Delete(topic)
	var groups []string
	for g := range c.groups[topic] {
		groups = append(groups, g)
	}
	delete(c.groups, topic)
	c.topicsMu.Unlock()
	return c.whileUnreachable(ctx, "delete topic "+topic, func(ctx context.Context) error {
		return c.deleteTopic(ctx, topic, groups)
	})
}

// deleteTopic deletes topic and then groups on the brokers.
func (c *Client) deleteTopic(ctx context.Context, topic string, groups []string) error {
	resp, err := c.admin.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("kafka: delete topic %s: %w", topic, err)
	}
	if c.producer != nil {
		c.producer.ForgetTopic(topic)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka: delete topic %s: %w", topic, err)
	}
	sort.Strings(groups)
	for _, g := range groups {
		// One group per request: kafka-go sends a DeleteGroups request to
		// the coordinator of its first group only.
		resp, err := c.admin.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: []string{g}})
		if err != nil {
			return fmt.Errorf("kafka: delete group %s of %s: %w", g, topic, err)
		}
		if err := resp.Errors[g]; err != nil && !errors.Is(err, kafkago.GroupIdNotFound) && !errors.Is(err, kafkago.NonEmptyGroup) {
			return fmt.Errorf("kafka: delete group %s of %s: %w", g, topic, err)
		}
	}
	return nil
}

// Close stops every subscription (handlers in flight finish, and can still
// publish, their offsets are committed and the groups are left), waits
// until every record handed to Publish has been sent and answered (a
// request failing then is not
// retried; a broker that does not answer holds it until the records'
// unavailable deadlines, so about unavailable_timeout after the last
// Publish began at most), and makes further calls fail with ErrClosed. It is
// idempotent. A group subscription caught in the middle of a group join
// leaves once the join answers (bounded by the rebalance timeout). A
// subscription's Close does not wait for its fetchers' long polls (up to
// kafka-go's MaxWait, 500ms); the client's Close does.
func (c *Client) Close() error {
	_ = c.Consumer.Close()
	c.readers.Wait()
	c.async.Close() // while publishing still works
	c.closed.Store(true)
	if c.producer != nil {
		c.producer.Close()
	}
	if c.ownTrans != nil {
		c.ownTrans.CloseIdleConnections()
	}
	return nil
}

func (c *Client) rememberGroup(topic, group string) {
	c.topicsMu.Lock()
	defer c.topicsMu.Unlock()
	if c.groups[topic] == nil {
		c.groups[topic] = map[string]bool{}
	}
	c.groups[topic][group] = true
}

// recreateTopic forgets that topic exists, which another client may have
// deleted since this one made sure of it, and creates it again.
func (c *Client) recreateTopic(ctx context.Context, topic string) error {
	c.forgetTopic(topic)
	return c.ensureTopic(ctx, topic, true)
}

// topicNotFound is what a request that found topic missing does with
// auto-creation off: when a broker, asked directly (kafka-go's metadata
// cache may still list a deleted topic, or not list a new one yet), says
// the topic does not exist, it forgets the topic and returns an error
// wrapping messaging.ErrTopicNotFound, which fails the request at once (see
// producer.Settings.TopicMissing); otherwise it returns nil and the
// request is retried.
func (c *Client) topicNotFound(ctx context.Context, topic string) error {
	if !c.topicGone(ctx, topic) {
		return nil
	}
	c.forgetTopic(topic)
	return fmt.Errorf("kafka: topic %s does not exist and auto-creation is off: %w", topic, messaging.ErrTopicNotFound)
}

func (c *Client) forgetTopic(topic string) {
	c.topicsMu.Lock()
	delete(c.topics, topic)
	c.topicsMu.Unlock()
	c.partitionCounts.Delete(topic)
}

// ensureTopic makes sure topic exists, creating it when create is true, and
// waits until every partition has a leader. A topic it made sure of is
// remembered and not looked up again, until DeleteTopic, or an operation
// that finds it missing (another client deleted it), forgets it.
func (c *Client) ensureTopic(ctx context.Context, topic string, create bool) error {
	c.topicsMu.Lock()
	known := c.topics[topic]
	c.topicsMu.Unlock()
	if known {
		return nil
	}
	if create {
		resp, err := c.admin.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
			Topic: topic, NumPartitions: c.cfg.partitions, ReplicationFactor: c.cfg.replicationFactor,
		}}})
		if err != nil {
			return fmt.Errorf("kafka: create topic: %w", err)
		}
		if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			if errors.Is(err, kafkago.InvalidTopic) {
				// The name is valid for the library: Kafka refuses it because
				// another topic differs from it only in '.' versus '_'.
				return fmt.Errorf("%w: kafka refuses topic %q: a topic whose name differs from it only in '.' versus '_' exists (Kafka forbids such pairs: their metric names collide): %w", messaging.ErrInvalidTopic, topic, err)
			}
			return fmt.Errorf("kafka: create topic: %w", err)
		}
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		n, err := c.partitionCount(ctx, topic)
		if err != nil {
			if !create && errors.Is(err, kafkago.UnknownTopicOrPartition) {
				return struct{}{}, backoff.Permanent(fmt.Errorf("kafka: topic %s does not exist and auto-creation is off: %w (%w)", topic, messaging.ErrTopicNotFound, err))
			}
			return struct{}{}, err
		}
		if n == 0 {
			return struct{}{}, fmt.Errorf("kafka: topic %s has no partitions yet", topic)
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(fastBackOff()), backoff.WithMaxElapsedTime(30*time.Second))
	if err != nil {
		return err
	}
	c.topicsMu.Lock()
	c.topics[topic] = true
	c.topicsMu.Unlock()
	return nil
}

func fastBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 20 * time.Millisecond
	b.MaxInterval = time.Second
	return b
}

// topicMetadata returns the metadata of topic. kafka-go's transport
// answers from a cache; with auto-creation on, the request is marked so
// that a topic missing from the cache is looked up on the brokers (and the
// cache refreshed) instead of reported missing until the cache expires. An
// error wraps kafkago.UnknownTopicOrPartition when the topic does not exist.
func (c *Client) topicMetadata(ctx context.Context, topic string) (*metadataAPI.ResponseTopic, error) {
	r, err := c.transport.RoundTrip(ctx, c.admin.Addr, &metadataAPI.Request{
		TopicNames: []string{topic}, AllowAutoTopicCreation: c.cfg.autoCreate,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata of %s: %w", topic, err)
	}
	resp, ok := r.(*metadataAPI.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: metadata of %s: unexpected response %T", topic, r)
	}
	for i := range resp.Topics {
		if t := &resp.Topics[i]; t.Name == topic {
			if t.ErrorCode != 0 {
				return nil, fmt.Errorf("kafka: metadata of %s: %w", topic, kafkago.Error(t.ErrorCode))
			}
			return t, nil
		}
	}
	return nil, fmt.Errorf("kafka: metadata of %s: %w", topic, kafkago.UnknownTopicOrPartition)
}

// partitions returns the partition IDs of topic, sorted; an error wraps
// kafkago.UnknownTopicOrPartition when the topic does not exist or a
// partition has no leader yet.
func (c *Client) partitions(ctx context.Context, topic string) ([]int, error) {
	t, err := c.topicMetadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	ids := make([]int, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		if p.ErrorCode != 0 {
			return nil, fmt.Errorf("kafka: metadata of %s partition %d: %w", topic, p.PartitionIndex, kafkago.Error(p.ErrorCode))
		}
		ids = append(ids, int(p.PartitionIndex))
	}
	sort.Ints(ids)
	return ids, nil
}

func (c *Client) partitionCount(ctx context.Context, topic string) (int, error) {
	ids, err := c.partitions(ctx, topic)
	return len(ids), err
}

// writePartitions returns the partition count of topic for Publish. Unlike
// partitions it does not fail when a partition has no leader for a moment:
// the produce request to it is retried, as kafka-go's Writer does.
func (c *Client) writePartitions(ctx context.Context, topic string) (int, error) {
	t, err := c.topicMetadata(ctx, topic)
	if err != nil {
		return 0, err
	}
	return len(t.Partitions), nil
}

// listOffsets asks for one offset per partition: the first, the end (next
// offset to be written) or the first at or after a time (the end when there
// is none).
func (c *Client) listOffsets(ctx context.Context, topic string, parts []int, kind messaging.PositionKind, at time.Time) (map[int]int64, error) {
	reqs := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		switch kind {
		case messaging.PositionEarliest:
			reqs[i] = kafkago.FirstOffsetOf(p)
		case messaging.PositionLatest:
			reqs[i] = kafkago.LastOffsetOf(p)
		default:
			reqs[i] = kafkago.TimeOffsetOf(p, at)
		}
	}
	resp, err := c.admin.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafka: list offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(parts))
	var needEnd []int
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafka: list offsets of %s partition %d: %w", topic, po.Partition, po.Error)
		}
		switch kind {
		case messaging.PositionEarliest:
			out[po.Partition] = po.FirstOffset
		case messaging.PositionLatest:
			out[po.Partition] = po.LastOffset
		default:
			found := false
			for off := range po.Offsets {
				if off >= 0 {
					out[po.Partition], found = off, true
				}
			}
			if !found {
				needEnd = append(needEnd, po.Partition)
			}
		}
	}
	if len(needEnd) > 0 {
		end, err := c.listOffsets(ctx, topic, needEnd, messaging.PositionLatest, time.Time{})
		if err != nil {
			return nil, err
		}
		for p, o := range end {
			out[p] = o
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("kafka: list offsets of %s: no answer for partition %d", topic, p)
		}
	}
	return out, nil
}

// resolve turns a Position into a start offset for each of parts. An offset
// position ("p:o", or a comma-separated list) sets the partitions it names;
// the other partitions start at their earliest offset, so nothing after the
// position is missed (messages of those partitions from before it may be
// delivered too).
func (c *Client) resolve(ctx context.Context, topic string, parts []int, pos messaging.Position) (map[int]int64, error) {
	if err := pos.Validate(); err != nil {
		return nil, err
	}
	switch pos.Kind {
	case messaging.PositionEarliest, messaging.PositionLatest, messaging.PositionAtTime:
		return c.listOffsets(ctx, topic, parts, pos.Kind, pos.Time)
	}
	named, err := parseOffsets(pos.Offset)
	if err != nil {
		return nil, err
	}
	out, err := c.listOffsets(ctx, topic, parts, messaging.PositionEarliest, time.Time{})
	if err != nil {
		return nil, err
	}
	for p, o := range named {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("%w: position %v: topic %s has no partition %d", messaging.ErrInvalidOption, pos, topic, p)
		}
		if pos.Kind == messaging.PositionAfterOffset {
			o++
		}
		out[p] = o
	}
	return out, nil
}

// initGroup gives group a committed offset on every partition of topic
// that has none yet: resolved from start when the group has no offset on
// the topic (a new group), else (partitions added to the topic since the
// group started) their earliest offset, so nothing written to them is
// lost. The commit is a "simple" one (generation -1), which the coordinator
// accepts only while the group has no members; a group with members already
// exists and is left alone (its members start such partitions at their
// earliest offset too, see groupReceiver.serve). Then, when the group has
// no offset on the topic (its members consume other topics), initGroup
// returns the starts it resolved from start, for the subscription's first
// generation (see groupReceiver.uncommittedStarts): resolved there
// instead, a Latest start would skip what was published after Subscribe
// returned and before the generation began.
func (c *Client) initGroup(ctx context.Context, topic, group string, start messaging.Position) (map[int]int64, error) {
	c.rememberGroup(topic, group)
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	have, err := c.committed(ctx, topic, group, parts)
	if err != nil {
		return nil, err
	}
	var missing []int
	for _, p := range parts {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if len(have) > 0 {
		start = messaging.Earliest
	}
	offsets, err := c.resolve(ctx, topic, missing, start)
	if err != nil {
		return nil, err
	}
	commits := make([]kafkago.OffsetCommit, 0, len(offsets))
	for _, p := range missing {
		commits = append(commits, kafkago.OffsetCommit{Partition: p, Offset: offsets[p]})
	}
	resp, err := c.admin.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{topic: commits},
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: initialise offsets of group %s: %w", group, err)
	}
	for _, p := range resp.Topics[topic] {
		switch {
		case p.Error == nil:
		case errors.Is(p.Error, kafkago.UnknownMemberId), errors.Is(p.Error, kafkago.IllegalGeneration), errors.Is(p.Error, kafkago.RebalanceInProgress):
			// The group has live members: it exists, and they own its offsets.
			if len(have) > 0 {
				return nil, nil
			}
			return offsets, nil
		default:
			return nil, fmt.Errorf("kafka: initialise offsets of group %s partition %d: %w", group, p.Partition, p.Error)
		}
	}
	return nil, nil
}

// committed reports which of parts of topic group has a committed offset
// on (none when the group does not exist).
func (c *Client) committed(ctx context.Context, topic, group string, parts []int) (map[int]bool, error) {
	fetched, err := c.admin.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("kafka: fetch offsets of group %s: %w", group, err)
	}
	if fetched.Error != nil && !errors.Is(fetched.Error, kafkago.GroupIdNotFound) {
		return nil, fmt.Errorf("kafka: fetch offsets of group %s: %w", group, fetched.Error)
	}
	have := map[int]bool{}
	for _, p := range fetched.Topics[topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			have[p.Partition] = true
		}
	}
	return have, nil
}
