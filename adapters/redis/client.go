package redis

import (
	"context"
	"errors"
	"fmt"
	"github.com/cenkalti/backoff/v5"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
	"github.com/msgkit/messaging/internal/asyncpub"
	"github.com/msgkit/messaging/internal/unavail"
)

func init() {
	messaging.Register("redis", openURL)
	messaging.Register("rediss", openURL)
}

// Client publishes to and consumes from Redis Streams. It implements
// messaging.Client, messaging.BatchConsumer, messaging.Stream,
// messaging.Provisioner, messaging.TopicDeleter and messaging.Shutdowner,
// and is safe for concurrent use. Its consumer side is the library's engine
// (package engine) over the driver in driver.go.
type Client struct {
	*engine.Consumer // Subscribe, SubscribeBatch, Read, Shutdown
	rc               goredis.UniversalClient
	cfg              config
	hashTag          bool
	closeOnce        sync.Once
	closeErr         error
	// closed is set by Close once the consumer side has stopped and
	// PublishAsync's queue is closed: the handlers Close (or a Shutdown)
	// waits for may still publish.
	closed atomic.Bool
	co     *coalescer    // nil unless WithCoalescing
	async  asyncpub.Lazy // PublishAsync (publish_async.go)
	// deadlines keeps each message's unavailable deadline, never sooner
	// than unavailable_timeout after the last acknowledged publish (see
	// deadline): of the client, or on a cluster, whose shards fail apart,
	// of the stream key.
	deadlines *asyncpub.Deadlines[string]
	cluster   bool
	waker     waker // hand-overs between group members (wake.go)
	// plainReads: group reads go out as plain commands (see plainReads).
	plainReads bool
}

var errClosedPublish = fmt.Errorf("redis: publish: %w", messaging.ErrClosed)

var (
	_ messaging.Client        = (*Client)(nil)
	_ messaging.BatchConsumer = (*Client)(nil)
	_ messaging.Stream        = (*Client)(nil)
	_ messaging.Provisioner   = (*Client)(nil)
	_ messaging.TopicDeleter  = (*Client)(nil)
	_ messaging.Shutdowner    = (*Client)(nil)
)

// New returns a Client using rc, a standalone, sentinel (failover) or
// cluster go-redis client the caller already has. Close does not close rc
// unless WithCloseClient(true) is given. New does not contact the server.
// Give rc go-redis's ContextTimeoutEnabled option (Open does) so that
// context deadlines, and Publish's unavailable timeout, bound calls to a
// server that takes requests and never answers: without it each such call
// lasts rc's ReadTimeout (5s by default).
// It fails with an error wrapping messaging.ErrInvalidOption when rc is nil
// or an option is invalid (the first such option's error).
func New(rc goredis.UniversalClient, opts ...Option) (*Client, error) {
	if rc == nil {
		return nil, fmt.Errorf("redis: New: nil go-redis client: %w", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newClient(rc, cfg), nil
}

func newClient(rc goredis.UniversalClient, cfg config) *Client {
	c := &Client{rc: rc, cfg: cfg, deadlines: asyncpub.NewDeadlines[string](cfg.unavailable)}
	c.waker.c = c
	_, c.cluster = rc.(*goredis.ClusterClient)
	c.plainReads = plainReads(rc, cfg.block)
	switch cfg.hashTag {
	case 0:
		c.hashTag = false
	case 1:
		c.hashTag = true
	default:
		_, c.hashTag = rc.(*goredis.ClusterClient)
	}
	if cfg.coalesce > 0 {
		c.co = newCoalescer(c, cfg.coalesce)
	}
	c.Consumer = engine.New(redisDriver{c}, engine.Options{
		Name: "redis", Logger: cfg.logger, DefaultPrefetch: DefaultPrefetch,
		SettleTimeout: settleTimeout, SettleBatch: 512,
	})
	return c
}

// Open connects to the Redis server at rawURL and checks that it answers
// (PING). The URL is
//
//	redis[s]://[[user]:password@]host[:port][/db][?param=value&...]
//
// with this package's parameters (see the package documentation) and any
// go-redis URL parameter (dial_timeout, pool_size, ...). opts apply after
// the URL's parameters. rediss:// uses TLS.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	u, err := messaging.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return open(ctx, u, opts...)
}

func openURL(ctx context.Context, u *url.URL, s messaging.OpenSettings) (messaging.Client, error) {
	if s.Logger != nil {
		return open(ctx, u, WithLogger(s.Logger))
	}
	return open(ctx, u)
}

func open(ctx context.Context, u *url.URL, opts ...Option) (*Client, error) {
	rc, urlOpts, err := parseURL(u)
	if err != nil {
		return nil, messaging.RedactError(err, u)
	}
	cfg, err := newConfig(append(urlOpts, opts...))
	if err != nil {
		_ = rc.Close()
		return nil, messaging.RedactError(err, u)
	}
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		return nil, messaging.RedactError(fmt.Errorf("redis: connect to %s: %w", messaging.RedactURL(u), err), u)
	}
	return newClient(rc, cfg), nil
}

// Redis returns the go-redis client the Client uses.
func (c *Client) Redis() goredis.UniversalClient { return c.rc }

// StreamKey returns the Redis key of topic's stream.
func (c *Client) StreamKey(topic string) string {
	if c.hashTag {
		return c.cfg.prefix + "{" + topic + "}"
	}
	return c.cfg.prefix + topic
}

// Capabilities reports what the Redis adapter guarantees; see the package
// documentation for the conditions (AOF, fsync policy, replication).
func (c *Client) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{
		Persistent:       true,
		Groups:           true,
		Replay:           true,
		ReplayByTime:     true,
		GroupStartAt:     true,
		PerKeyOrder:      true,
		AckDeadline:      true,
		BrokerAttempts:   true,
		NativeDelay:      false,
		NativeDeadLetter: c.cfg.deadLetterSuffix != "",
		MaxMessageSize:   c.cfg.maxMessageSize,

		PublishAssignsID: !c.cfg.callerIDs, // driver.PreparePublish
	}
}

// preparePublish checks msgs before publishing and, unless WithCallerIDs, gives
// those without an ID and Time new ones.
func (c *Client) preparePublish(topic string, msgs []*messaging.Message) error {
	if c.cfg.callerIDs {
		return driver.CheckPublish(topic, msgs, c.cfg.maxMessageSize)
	}
	return driver.PreparePublish(topic, msgs, c.cfg.maxMessageSize)
}

// Publish appends msgs to topic's stream with one pipelined XADD each (one
// round trip per call; with WithCoalescing concurrent calls share round
// trips) and returns once Redis has accepted all of them. How
// durable an accepted entry is depends on the server (see the package
// documentation). Messages of one call keep their order in the stream.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if c.closed.Load() {
		return errClosedPublish
	}
	entry := time.Now()
	if err := c.preparePublish(topic, msgs); err != nil {
		return err
	}
	return c.publishChecked(ctx, entry, nil, topic, msgs)
}

// publishChecked is Publish after its checks: PublishAsync's batches come
// here, each message checked (and given its ID) when it was queued.
// Message i fails with messaging.ErrUnavailable once its deadline (see
// deadline) has passed unacknowledged, counted from entered[i], or from entry
// for every message when entered is nil. entered never decreases, so the
// messages whose deadline passed are always the first ones still
// unacknowledged: they fail (without being sent when it passed before they
// were) and the others are retried without them.
func (c *Client) publishChecked(ctx context.Context, entry time.Time, entered []time.Time, topic string, msgs []*messaging.Message) error {
	if c.closed.Load() {
		return errClosedPublish
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redis: publish to %s: %w", topic, err)
	}
	// While the server is unreachable, retry until the first message's
	// deadline; then (or when ctx ends) fail it with
	// messaging.ErrUnavailable. The deadline bounds every attempt,
	// go-redis's own retries and dials within it included.
	r := publishRun{c: c, topic: topic, msgs: msgs, entry: entry, entered: entered}
	if c.cluster { // deadline reads key only there
		r.key = c.StreamKey(topic)
	}
	var bo *backoff.ExponentialBackOff // made at the first retry
	var last error                     // the last attempt's error, about r.live()
	// PublishAsync's messages: whether each is still to be sent (its ctx,
	// the client's Close), checked before each attempt sends them (with
	// the coalescer, when a pipeline takes them): a retry is a new send,
	// and a message no longer wanted by then fails without being sent
	// again, as it would have on its first attempt (the failed attempt may
	// have reached the server: a failure reported may have been stored,
	// never the reverse).
	unwanted := asyncpub.Unwanted(ctx)
	for {
		// (A direct Publish's first attempt follows its entry at once.)
		if (last != nil || entered != nil) && r.expire(time.Now(), last) {
			return r.result()
		}
		giveUp := c.deadline(r.key, r.enteredAt(0))
		attemptCtx, cancel := context.WithDeadline(ctx, giveUp)
		var u func(int) error
		if unwanted != nil {
			// The coalescer may call u after this attempt gave up (its
			// request taken, then its deadline passed): u holds its own
			// copies, not the variables the next attempts change.
			f, off := unwanted, r.off
			u = func(j int) error { return f(off + j) }
		}
		err := c.publishOnce(attemptCtx, ctx, r.enteredAt(0), topic, r.live(), u)
		timedOut := ctx.Err() == nil && attemptCtx.Err() != nil
		cancel()
		if err == nil {
			return r.result()
		}
		if timedOut {
			// The first messages' deadline passed (unless a reply to
			// another call came meanwhile): they fail, the others go on.
			last = markUnavailable(err)
			continue
		}
		if !unreachable(err) {
			return r.failRest(err)
		}
		if bo == nil {
			bo = backoff.NewExponentialBackOff()
			bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 250*time.Millisecond
		}
		t := time.NewTimer(min(bo.NextBackOff(), time.Until(c.deadline(r.key, r.enteredAt(0)))))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r.failRest(markUnavailable(err))
		}
		last = markUnavailable(err)
		if c.closed.Load() {
			return r.failRest(last) // Close stops the retries
		}
	}
}

// deadline is when a message to the stream key that entered Publish (or
// PublishAsync's queue) at entered fails unacknowledged with
// messaging.ErrUnavailable: unavailable_timeout after then, or after the
// last acknowledged publish if that is later (a server that is slow but
// answering is not unavailable: the messages queued behind it wait their
// turn). On a cluster only a publish to key counts: another shard's
// answers say nothing of key's.
func (c *Client) deadline(key string, entered time.Time) time.Time {
	return c.deadlines.Deadline(c.clockKey(key), entered)
}

// replied notes that a publish to key (a call's XADDs, or a coalesced
// pipeline's) was acknowledged now.
func (c *Client) replied(key string) { c.deadlines.Answered(c.clockKey(key)) }

// clockKey is the key of key's clock in deadlines: key on a cluster, else
// one for the client.
func (c *Client) clockKey(key string) string {
	if c.cluster {
		return key
	}
	return ""
}

// publishRun is the state of one publishChecked: its messages, the first
// off of which are settled (they failed: errs holds their errors, made at
// the first failure).
type publishRun struct {
	c       *Client
	topic   string
	key     string // the stream key, on a cluster (see Client.deadline)
	msgs    []*messaging.Message
	entry   time.Time
	entered []time.Time
	off     int
	errs    []error
}

// live returns the messages not settled yet.
func (r *publishRun) live() []*messaging.Message { return r.msgs[r.off:] }

// enteredAt returns when live message i entered.
func (r *publishRun) enteredAt(i int) time.Time {
	if r.entered == nil {
		return r.entry
	}
	return r.entered[r.off+i]
}

// expire settles the live messages whose deadline passed by now, with
// their error in last (the last attempt's, about the live messages; none
// for a message it acknowledged), or as not sent when no attempt was made.
// It reports whether no message is left.
func (r *publishRun) expire(now time.Time, last error) bool {
	live := r.live()
	k := 0
	for k < len(live) && !now.Before(r.c.deadline(r.key, r.enteredAt(k))) {
		k++
	}
	if k == 0 {
		return false
	}
	var pe *messaging.PublishError
	if last != nil && (!errors.As(last, &pe) || len(pe.Errs) != len(live)) {
		pe = nil
	}
	r.settle(k, func(i int) error {
		switch {
		case pe != nil:
			return pe.Errs[i]
		case last != nil:
			return last
		}
		return fmt.Errorf("redis: publish to %s: %w: not sent: its unavailable timeout (%v) passed while it was queued", r.topic, messaging.ErrUnavailable, r.c.cfg.unavailable)
	})
	return r.off == len(r.msgs)
}

// settle settles the first n live messages, live message i with err(i).
func (r *publishRun) settle(n int, err func(i int) error) {
	if r.errs == nil {
		r.errs = make([]error, len(r.msgs))
	}
	for i := range n {
		r.errs[r.off+i] = err(i)
	}
	r.off += n
}

// failRest settles the live messages with err (about them: a
// *messaging.PublishError with an entry per live message, or an error for
// all) and returns the result. When no message was settled before, that is
// err itself.
func (r *publishRun) failRest(err error) error {
	if r.off == 0 {
		return err
	}
	var pe *messaging.PublishError
	perMsg := errors.As(err, &pe) && len(pe.Errs) == len(r.msgs)-r.off
	r.settle(len(r.msgs)-r.off, func(i int) error {
		if perMsg {
			return pe.Errs[i]
		}
		return err
	})
	return r.result()
}

// result is the outcome once the live messages were acknowledged: nil, or
// a *messaging.PublishError with the errors of the messages settled before.
func (r *publishRun) result() error {
	for _, err := range r.errs {
		if err != nil {
			return &messaging.PublishError{Errs: r.errs}
		}
	}
	return nil
}

// unreachable reports whether every failure in err says the server could
// not be reached, leaving out those of messages failed unsent (see
// unsentError), which say nothing of the server.
func unreachable(err error) bool {
	var pe *messaging.PublishError
	if !errors.As(err, &pe) {
		return false
	}
	found := false
	for _, e := range pe.Errs {
		if e == nil || unsent(e) {
			continue
		}
		if !connFailure(e) {
			return false
		}
		found = true
	}
	return found
}

// connFailure reports whether err says the server could not be reached (a
// dial or a connection that failed or timed out).
func connFailure(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// whileUnreachable bounds a topology or admin call as Publish is bounded:
// it runs f (the call's commands) and runs it again while the server
// cannot be reached (connFailure) and the client is open, until f
// succeeds or fails otherwise, ctx ends (the error then wraps ctx's), or
// unavailable_timeout has passed since the call began (the error then
// wraps messaging.ErrUnavailable); see unavail.Retry. The timeout bounds
// every attempt, go-redis's own retries and dials included. op names the
// call in those two errors.
func (c *Client) whileUnreachable(ctx context.Context, op string, f func(ctx context.Context) error) error {
	return unavail.Retry(ctx, "redis", op, c.cfg.unavailable, c.unreachable, f)
}

// unreachable: err says the server could not be reached, and the client
// is open (whileUnreachable's retries).
func (c *Client) unreachable(err error) bool { return connFailure(err) && !c.closed.Load() }

// markUnavailable wraps every failure of a PublishError in
// messaging.ErrUnavailable, but those of messages failed unsent (see
// unsentError).
func markUnavailable(err error) error {
	var pe *messaging.PublishError
	if !errors.As(err, &pe) {
		return err
	}
	for i, e := range pe.Errs {
		if e != nil && !unsent(e) {
			pe.Errs[i] = fmt.Errorf("%w: %w", messaging.ErrUnavailable, e)
		}
	}
	return pe
}

// publishOnce sends msgs, the first of which entered at entered, once,
// within ctx (the attempt's, a child of parent); failures come as a
// *messaging.PublishError. When unwanted is not nil, a message it names
// (its ctx ended, the client is closing) fails unsent: at once, or with
// the coalescer, where a message waits for a pipeline, when a pipeline
// takes the request.
func (c *Client) publishOnce(ctx, parent context.Context, entered time.Time, topic string, msgs []*messaging.Message, unwanted func(i int) error) error {
	key := c.StreamKey(topic)
	var minID string
	if c.cfg.maxLen == 0 && c.cfg.maxAge > 0 {
		minID = strconv.FormatInt(time.Now().Add(-c.cfg.maxAge).UnixMilli(), 10)
	}
	if c.co != nil {
		return c.co.publish(ctx, parent, c.newPubReq(parent, entered, topic, key, minID, msgs, unwanted))
	}
	if unwanted != nil {
		if send, at, errs := dropUnwanted(msgs, unwanted); errs != nil {
			// Some are no longer wanted: the others go as a call of their own.
			if len(send) > 0 {
				err := c.publishOnce(ctx, parent, entered, topic, send, nil)
				var pe *messaging.PublishError
				if err != nil && !errors.As(err, &pe) {
					return err
				}
				for i, j := range at {
					if pe != nil {
						errs[j] = pe.Errs[i]
					}
				}
			}
			return &messaging.PublishError{Errs: errs}
		}
	}
	if len(msgs) == 1 {
		if err := c.rc.XAdd(ctx, c.xadd(key, msgs[0], minID)).Err(); err != nil {
			return &messaging.PublishError{Errs: []error{c.opError("publish to "+topic, err)}}
		}
		c.replied(key)
		return nil
	}
	pipe := c.rc.Pipeline()
	cmds := make([]*goredis.StringCmd, len(msgs))
	for i, m := range msgs {
		cmds[i] = pipe.XAdd(ctx, c.xadd(key, m, minID))
	}
	if _, err := pipe.Exec(ctx); err == nil {
		c.replied(key)
		return nil
	}
	pe := &messaging.PublishError{Errs: make([]error, len(msgs))}
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			pe.Errs[i] = c.opError("publish to "+topic, err)
		}
	}
	return pe
}

// dropUnwanted fails, unsent, the messages of msgs no longer to be sent
// (see asyncpub.Unwanted): it returns nil errs when every message is, else
// the messages still to send, their indexes in msgs, and one error per
// message of msgs, set for those it failed.
func dropUnwanted(msgs []*messaging.Message, unwanted func(i int) error) (send []*messaging.Message, at []int, errs []error) {
	for i := range msgs {
		err := unwanted(i)
		if err == nil {
			if errs != nil {
				send, at = append(send, msgs[i]), append(at, i)
			}
			continue
		}
		if errs == nil {
			errs = make([]error, len(msgs))
			send, at = append(send, msgs[:i]...), make([]int, 0, len(msgs))
			for j := range i {
				at = append(at, j)
			}
		}
		errs[i] = &unsentError{err}
	}
	return send, at, errs
}

func (c *Client) xadd(key string, m *messaging.Message, minID string) *goredis.XAddArgs {
	a := &goredis.XAddArgs{Stream: key, Values: encode(m)}
	switch {
	case c.cfg.maxLen > 0:
		a.MaxLen, a.Approx = c.cfg.maxLen, true
	case minID != "":
		a.MinID, a.Approx = minID, true
	}
	return a
}

// opError wraps a Redis error, mapping a closed go-redis client to
// messaging.ErrClosed.
func (c *Client) opError(op string, err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("redis: %s: %w (%w)", op, messaging.ErrClosed, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// Provision creates topic's stream and each group (starting at the
// beginning of the stream, so nothing published from now on is missed by
// them). It is idempotent: existing groups keep their position.
func (c *Client) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "provision", topic, groups...); err != nil {
		return err
	}
	return c.whileUnreachable(ctx, "provision "+topic, func(ctx context.Context) error {
		for _, g := range groups {
			if err := c.ensureGroup(ctx, c.StreamKey(topic), g, "0-0"); err != nil {
				return fmt.Errorf("redis: provision %s: %w", topic, err)
			}
		}
		return nil
	})
}

// ensureGroup creates group on key starting after start, creating the
// stream if needed; an existing group is left as it is.
func (c *Client) ensureGroup(ctx context.Context, key, group, start string) error {
	err := c.rc.XGroupCreateMkStream(ctx, key, group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return c.opError("create group "+group, err)
	}
	return nil
}

// DeleteTopic deletes topic's stream, and with it every consumer group and
// pending list. Subscriptions still running on it end with an error.
// Dead-letter topics are topics of their own and are not deleted.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "delete topic", topic); err != nil {
		return err
	}
	key := c.StreamKey(topic)
	err := c.whileUnreachable(ctx, "delete topic "+topic, func(ctx context.Context) error {
		if err := c.rc.Del(ctx, key).Err(); err != nil {
			return c.opError("delete topic "+topic, err)
		}
		return nil
	})
	if err == nil {
		c.deadlines.Forget(func(k string) bool { return k == key }) // a cluster's clock of the stream
	}
	return err
}

// Close stops every subscription (handlers in flight finish, and can still
// publish, and their messages are settled; fetched but unhandled messages
// are released to the group), then makes further calls fail with
// ErrClosed. PublishAsync messages still queued fail with ErrClosed; Close
// waits for the batches and coalesced pipelines in flight, which a server
// that cannot be reached holds
// until their messages' unavailable deadlines (see WithUnavailableTimeout).
// It closes the go-redis client only when the Client owns it (Open, or
// WithCloseClient). It is idempotent.
func (c *Client) Close() error {
	_ = c.Consumer.Close()
	c.async.Close() // while publishing still works
	c.closed.Store(true)
	c.closeOnce.Do(func() {
		c.waker.close()
		if c.co != nil {
			c.co.close()
		}
		if c.cfg.closeClient {
			c.closeErr = c.rc.Close()
		}
	})
	return c.closeErr
}

// lastID returns the ID of the newest entry ever added to key ("0-0" when
// the stream does not exist, which exists reports), which is where Latest
// starts.
func (c *Client) lastID(ctx context.Context, key string) (id string, exists bool, err error) {
	info, err := c.rc.XInfoStream(ctx, key).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return "0-0", false, nil
		}
		return "", false, c.opError("resolve latest position", err)
	}
	if info.LastGeneratedID == "" {
		return "0-0", true, nil
	}
	return info.LastGeneratedID, true, nil
}
