package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/driver/urlparam"
	"github.com/msgkit/messaging/engine"
	"github.com/msgkit/messaging/internal/asyncpub"
)

func init() {
	messaging.Register("amqp", openURL)
	messaging.Register("amqps", openURL)
}

// Client publishes to and consumes from RabbitMQ over one AMQP connection
// that it re-establishes when lost. It implements messaging.Client,
// messaging.BatchConsumer, messaging.Provisioner, messaging.TopicDeleter and
// messaging.Shutdowner, and messaging.Stream when built WithStreams. It is
// safe for concurrent use. Its consumer side is the library's engine
// (package engine) over the driver in driver.go.
type Client struct {
	*engine.Consumer // Subscribe, SubscribeBatch, Read
	cfg              config
	conn             *connector
	pool             *pubPool
	closed           atomic.Bool

	declared   sync.Map // topic -> connection generation it was declared on
	registered sync.Map // queue name -> struct{}: recorded in its topic's registry
	mismatched sync.Map // queue name -> struct{}: warned that it exists with other arguments
	undead     sync.Map // group queue name -> struct{}: exists and may not dead-letter into cfg.deadLetter (see declareGroup)

	mu          sync.Mutex
	provisioned map[string]map[string]bool // topic -> groups, re-declared on reconnect

	frameMax int // frame_max negotiated on the first connection

	async asyncpub.Lazy // PublishAsync (publish_async.go)
}

var (
	_ messaging.Client       = (*Client)(nil)
	_ messaging.Stream       = (*Client)(nil)
	_ messaging.Provisioner  = (*Client)(nil)
	_ messaging.TopicDeleter = (*Client)(nil)
	_ messaging.Shutdowner   = (*Client)(nil)
)

// Open connects to the broker at rawURL (amqp:// or amqps://; see the package
// documentation for the query parameters) and returns a client that owns the
// connection and redials the URL when the connection is lost. opts apply
// after the URL's parameters.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	u, err := messaging.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return open(ctx, u, opts...)
}

func openURL(ctx context.Context, u *url.URL, s messaging.OpenSettings) (messaging.Client, error) {
	var opts []Option
	if s.Logger != nil {
		opts = append(opts, WithLogger(s.Logger))
	}
	c, err := open(ctx, u, opts...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// open opens a client for u; its errors show no credential of u.
func open(ctx context.Context, u *url.URL, opts ...Option) (*Client, error) {
	c, err := dialURL(ctx, u, opts)
	if err != nil {
		return nil, messaging.RedactError(err, u)
	}
	return c, nil
}

func dialURL(ctx context.Context, u *url.URL, opts []Option) (*Client, error) {
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return nil, fmt.Errorf("%w: scheme %q, want amqp or amqps", messaging.ErrInvalidURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %s has no host (want amqp://user:password@host:5672/vhost)", messaging.ErrInvalidURL, messaging.RedactURL(u))
	}
	urlOpts, heartbeat, name, err := urlOptions(u)
	if err != nil {
		return nil, err
	}
	cfg, err := newConfig(append(urlOpts, opts...))
	if err != nil {
		return nil, err
	}
	cfg.management.withAMQPCredentials(u)
	ac := cfg.amqpConfig
	if ac.TLSClientConfig != nil {
		// amqp091 fills in ServerName: keep the caller's config untouched.
		ac.TLSClientConfig = ac.TLSClientConfig.Clone()
	}
	if heartbeat > 0 {
		ac.Heartbeat = heartbeat
	} else if ac.Heartbeat <= 0 {
		ac.Heartbeat = answerHeartbeat(cfg.unavailable)
	}
	if name != "" {
		if ac.Properties == nil {
			ac.Properties = amqp.NewConnectionProperties()
		}
		ac.Properties.SetClientConnectionName(name)
	}
	plain := *u
	plain.RawQuery = ""
	hosts, err := newHostDialer(&plain, ac)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", messaging.ErrInvalidURL, err)
	}
	hosts.unavail = cfg.unavailable
	dial := hosts.dial
	conn, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: dial %s: %w", messaging.RedactURL(&plain), err)
	}
	if cfg.redial == nil {
		cfg.redial = dial
	}
	cfg.guards = hosts.guardOf
	return newClient(conn, true, cfg), nil
}

// answerHeartbeat is the AMQP heartbeat Open asks for when neither the
// URL nor WithAMQPConfig sets one: the unavailable timeout, in whole
// seconds, from 5s (below it, RabbitMQ's own advice, a client or link
// stalling a few seconds gets the connection closed) to 10s (amqp091's
// default, which it used to be: never longer, so a dead peer is noticed no
// later). RabbitMQ sends a heartbeat every half heartbeat while it has
// sent nothing else (measured on 3.10: every 2.5s for 5s), so a live
// broker's frames keep arriving within unavailable_timeout however long an
// answer takes, and the silence bound (see WithUnavailableTimeout) does
// not take a slow answer (a large queue's deletion, a declaration during
// an election) for silence: with the default timeout (5s) and amqp091's
// heartbeat (10s, a frame every 5s) it could.
func answerHeartbeat(unavailable time.Duration) time.Duration {
	return min(max(unavailable.Truncate(time.Second), 5*time.Second), 10*time.Second)
}

// urlParams declares the URL query parameters Open reads; doc.go documents
// each (TestURLParamsDocumented), and any other is rejected.
var urlParams = []urlparam.Param{
	{Name: "max_message_size", Doc: "largest Message.Size accepted (WithMaxMessageSize)"},
	{Name: "prefetch", Doc: "default QoS prefetch of subscriptions (WithPrefetch)"},
	{Name: "publish_channels", Doc: "confirm channels shared by Publish calls (WithPublishChannels)"},
	{Name: "streams", Doc: "record topics in stream queues (WithStreams)"},
	{Name: "dead_letter_exchange", Doc: "exchange receiving given-up messages (WithDeadLetterExchange)"},
	{Name: "reconnect_min", Doc: "first reconnect backoff (WithReconnectBackoff)"},
	{Name: "reconnect_max", Doc: "longest reconnect backoff (WithReconnectBackoff)"},
	{Name: "unavailable_timeout", Doc: "the calls' wait for a connection or on a blocked one (WithUnavailableTimeout)"},
	{Name: "management", Doc: "management API URL, without credentials (WithManagement)"},
	{Name: "heartbeat", Doc: "AMQP heartbeat interval"},
	{Name: "connection_name", Doc: "connection name shown by the broker"},
}

// urlOptions turns the URL's query parameters into options.
func urlOptions(u *url.URL) (opts []Option, heartbeat time.Duration, name string, err error) {
	p := urlparam.NewDeclared(u, urlParams)
	add := func(name string, o Option) { opts = append(opts, urlparam.Named(name, o)) }
	if p.Has("max_message_size") {
		add("max_message_size", WithMaxMessageSize(p.Size("max_message_size", DefaultMaxMessageSize)))
	}
	if p.Has("prefetch") {
		add("prefetch", WithPrefetch(p.Int("prefetch", DefaultPrefetch)))
	}
	if p.Has("publish_channels") {
		add("publish_channels", WithPublishChannels(p.Int("publish_channels", DefaultPublishChannels)))
	}
	if p.Has("streams") {
		add("streams", WithStreams(p.Bool("streams", false)))
	}
	if p.Has("dead_letter_exchange") {
		add("dead_letter_exchange", WithDeadLetterExchange(p.String("dead_letter_exchange", "")))
	}
	if p.Has("reconnect_min") || p.Has("reconnect_max") {
		add("reconnect_min/reconnect_max", WithReconnectBackoff(p.Duration("reconnect_min", 100*time.Millisecond), p.Duration("reconnect_max", DefaultReconnectMax)))
	}
	if p.Has("unavailable_timeout") {
		add("unavailable_timeout", WithUnavailableTimeout(p.Duration("unavailable_timeout", messaging.DefaultUnavailableTimeout)))
	}
	if p.Has("management") {
		o, err := managementParam(p.String("management", ""))
		if err != nil {
			return nil, 0, "", err
		}
		opts = append(opts, o)
	}
	heartbeat = p.Duration("heartbeat", 0)
	name = p.String("connection_name", "")
	if err := p.Err(); err != nil {
		return nil, 0, "", err
	}
	return opts, heartbeat, name, nil
}

// dialContext dials with amqp.DialConfig, giving up when ctx is done.
func dialContext(ctx context.Context, addr string, cfg amqp.Config) (*amqp.Connection, error) {
	type result struct {
		c   *amqp.Connection
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := amqp.DialConfig(addr, cfg)
		res <- result{c, err}
	}()
	select {
	case r := <-res:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// New returns a client using conn, a connection the caller opened (and
// keeps: Close does not close it). conn must not have amqp091's experimental
// Recovery enabled. Without WithRedial the client cannot reconnect when conn
// is lost.
func New(conn *amqp.Connection, opts ...Option) (*Client, error) {
	if conn == nil {
		return nil, fmt.Errorf("rabbitmq: New: nil connection: %w", messaging.ErrInvalidOption)
	}
	if conn.IsClosed() {
		return nil, fmt.Errorf("rabbitmq: new client: %w", ErrConnectionLost)
	}
	if conn.IsRecoveryEnabled() {
		return nil, fmt.Errorf("rabbitmq: New: connection has amqp091 Recovery enabled; the client reconnects by itself: %w", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newClient(conn, false, cfg), nil
}

func newClient(conn *amqp.Connection, owned bool, cfg config) *Client {
	c := &Client{cfg: cfg, provisioned: map[string]map[string]bool{}, frameMax: conn.Config.FrameSize}
	c.conn = newConnector(conn, owned, cfg.redial, cfg)
	c.conn.onReconnect(c.redeclare)
	c.pool = newPubPool(c.conn, cfg.publishChannels, cfg.unavailable)
	c.Consumer = engine.New(rabbitDriver{c}, engine.Options{Name: "rabbitmq", Logger: cfg.logger, DefaultPrefetch: cfg.prefetch})
	return c
}

// Capabilities reports what the RabbitMQ adapter guarantees; Replay and
// ReplayByTime need WithStreams, NativeDeadLetter needs
// WithDeadLetterExchange.
func (c *Client) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{
		Persistent:       true,
		Groups:           true,
		Replay:           c.cfg.streams,
		ReplayByTime:     c.cfg.streams,
		PerKeyOrder:      true,
		AckDeadline:      true,
		BrokerAttempts:   true,
		NativeDelay:      true,
		NativeDeadLetter: c.cfg.deadLetter != "",
		MaxMessageSize:   c.cfg.maxMessageSize,

		PublishAssignsID: true, // driver.PreparePublish
	}
}

// Close stops every subscription (handlers in flight finish, and can still
// publish, and are settled), waits for them, closes the publish channels
// and the connection (unless it was given to New) and stops reconnecting.
// Publish calls in flight fail. PublishAsync messages not yet written fail
// with messaging.ErrClosed at once, also when their batch waits for a
// connection or for the end of a resource alarm's block. Under a resource
// alarm (the broker blocked the connection), the PublishAsync messages
// written fail with messaging.ErrUnavailable within about the unavailable
// timeout of when they were queued, each subscription's channel close is
// waited for until the block has lasted the unavailable timeout (then it
// finishes in the background), and the connection is closed without
// waiting for the broker's close-ok. Close is idempotent.
func (c *Client) Close() error {
	_ = c.Consumer.Close()
	c.async.Close() // while publishing still works
	c.closed.Store(true)
	c.pool.close()
	c.conn.close()
	return nil
}

// isCode reports whether err is an AMQP error with the given reply code.
func isCode(err error, code int) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == code
}

// declareExchange declares topic's durable topic exchange.
func declareExchange(ch *amqp.Channel, topic string) error {
	if err := ch.ExchangeDeclare(topic, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: declare exchange %q: %w", topic, err)
	}
	return nil
}

// ensureTopic declares topic's exchange (and stream queue) on ch unless this
// client already did so on connection generation gen.
func (c *Client) ensureTopic(ctx context.Context, ch *amqp.Channel, gen uint64, topic string) error {
	if g, ok := c.declared.Load(topic); ok && g.(uint64) == gen {
		return nil
	}
	if err := c.declareTopic(ctx, ch, topic); err != nil {
		return err
	}
	c.declared.Store(topic, gen)
	return nil
}

func (c *Client) declareTopic(ctx context.Context, ch *amqp.Channel, topic string) error {
	if err := declareExchange(ch, topic); err != nil {
		return err
	}
	if !c.cfg.streams {
		return nil
	}
	q := streamQueue(topic)
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
		return fmt.Errorf("rabbitmq: declare stream queue %q: %w", q, err)
	}
	if err := ch.QueueBind(q, "#", topic, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: bind stream queue %q: %w", q, err)
	}
	return c.register(ctx, topic, q)
}

// register records queue in topic's registry queue, a durable queue holding
// the names of the queues created for the topic, so that DeleteTopic (in any
// process) finds and deletes them. Each client records a queue once.
func (c *Client) register(ctx context.Context, topic, queue string) error {
	if _, ok := c.registered.Load(queue); ok {
		return nil
	}
	ch, err := c.conn.channelNow()
	if err != nil {
		return err
	}
	defer ch.Close()
	reg := registryQueue(topic)
	if _, err := ch.QueueDeclare(reg, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		return fmt.Errorf("rabbitmq: declare registry queue %q: %w", reg, err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("rabbitmq: register queue %q: %w", queue, err)
	}
	dc, err := ch.PublishWithDeferredConfirm("", reg, true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(queue)})
	if err != nil {
		return fmt.Errorf("rabbitmq: register queue %q: %w", queue, err)
	}
	// Not cut short by ctx: the entry is sent, and a call that outlives
	// its ctx (see outlived) is over only once the registry holds it, so
	// that a DeleteTopic after it finds the queue. A lost channel or
	// connection (a silent broker's is closed) ends the wait.
	ok, err := dc.WaitContext(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("rabbitmq: register queue %q: %w", queue, err)
	}
	if !ok {
		return fmt.Errorf("rabbitmq: register queue %q: %w", queue, ErrNacked)
	}
	c.registered.Store(queue, struct{}{})
	return nil
}

// groupArgs are the arguments of a group's quorum queue: with a delivery
// limit of maxAttempts when it is above 0 and the server counts only
// failures toward it (see countsOnlyFailures).
func (c *Client) groupArgs(maxAttempts int) amqp.Table {
	args := amqp.Table{"x-queue-type": "quorum"}
	if maxAttempts > 0 && countsOnlyFailures(c.conn.version()) {
		args["x-delivery-limit"] = int64(maxAttempts)
	}
	if c.cfg.deadLetter != "" {
		args["x-dead-letter-exchange"] = c.cfg.deadLetter
	}
	return args
}

// declareGroup declares topic's exchange and group's quorum queue bound to
// it, on ch. A queue that exists with other arguments (another delivery
// limit or dead-letter exchange) is used as it is, with a warning (once per
// queue and client: each Subscribe of the group meets it again); the
// broker then closes ch, so declareGroup returns the channel to go on with.
// With WithDeadLetterExchange, such a queue is marked (in undead) unless
// it is found to dead-letter into the client's exchange: RabbitMQ does not
// tell a queue's arguments, but it accepts the declaration of a queue with
// exactly its own, and when its refusal says that the delivery limit
// differs and what the queue's is (see withQueueLimit), the declaration is
// tried again with that limit. The messages given up on a marked queue are
// dead-lettered by the client (see receiver.deadLetter).
func (c *Client) declareGroup(ctx context.Context, ch *amqp.Channel, topic, group string, maxAttempts int) (*amqp.Channel, error) {
	if err := c.declareTopic(ctx, ch, topic); err != nil {
		return ch, err
	}
	if c.cfg.deadLetter != "" {
		if err := ch.ExchangeDeclare(c.cfg.deadLetter, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return ch, fmt.Errorf("rabbitmq: declare dead-letter exchange %q: %w", c.cfg.deadLetter, err)
		}
	}
	q := groupQueue(topic, group)
	args := c.groupArgs(maxAttempts)
	_, err := ch.QueueDeclare(q, true, false, false, false, args)
	if err == nil {
		c.undead.Delete(q)
	} else {
		if !isCode(err, amqp.PreconditionFailed) {
			return ch, fmt.Errorf("rabbitmq: declare group queue %q: %w", q, err)
		}
		mismatch := err
		nch, cerr := c.conn.channelNow()
		if cerr != nil {
			return ch, cerr
		}
		ch = nch
		native := false
		// The queue may differ in its delivery limit only: try its limit.
		for try, tried := args, 0; c.cfg.deadLetter != "" && tried < 2; tried++ {
			if try = withQueueLimit(err, try); try == nil {
				break
			}
			_, err = ch.QueueDeclare(q, true, false, false, false, try)
			if err == nil {
				native = true
				break
			}
			if !isCode(err, amqp.PreconditionFailed) {
				return ch, fmt.Errorf("rabbitmq: declare group queue %q: %w", q, err)
			}
			nch, cerr := c.conn.channelNow()
			if cerr != nil {
				return ch, cerr
			}
			ch = nch
		}
		if c.cfg.deadLetter != "" && !native {
			c.undead.Store(q, struct{}{})
		} else {
			c.undead.Delete(q)
		}
		if _, warned := c.mismatched.LoadOrStore(q, struct{}{}); !warned {
			msg := "rabbitmq: group queue exists with other arguments; using it as it is (the client enforces MaxAttempts; the queue's own delivery limit, if any, still applies: before RabbitMQ 4.3 it can drop messages that no handler failed, see the package documentation)"
			if c.cfg.deadLetter != "" && !native {
				msg += "; it may not dead-letter into the client's dead-letter exchange, so the client publishes the messages it gives up there itself, with the dlheader headers instead of x-death"
			}
			c.cfg.logger.Warn(msg, "queue", q, "error", mismatch)
		}
		if !native {
			if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
				return ch, fmt.Errorf("rabbitmq: declare group queue %q: %w", q, err)
			}
		}
	}
	if err := ch.QueueBind(q, "#", topic, false, nil); err != nil {
		return ch, fmt.Errorf("rabbitmq: bind group queue %q: %w", q, err)
	}
	return ch, c.register(ctx, topic, q)
}

// inequivalentLimit matches RabbitMQ's refusal of a queue declaration
// whose x-delivery-limit differs from the queue's (the reply text, which
// the broker cuts at 255 bytes), capturing the queue's limit, empty when
// it has none.
var inequivalentLimit = regexp.MustCompile(`^PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue '.*' in vhost '.*': received .* but current is (?:none|the value '(\d+)' of type '\w+')$`)

// withQueueLimit returns args with x-delivery-limit as the queue has it
// when err, the broker's refusal of a declaration with args, says that
// argument differs and tells the queue's; nil otherwise (another argument
// differs, or the reply text does not say).
func withQueueLimit(err error, args amqp.Table) amqp.Table {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		return nil
	}
	m := inequivalentLimit.FindStringSubmatch(ae.Reason)
	if m == nil {
		return nil
	}
	out := maps.Clone(args)
	delete(out, "x-delivery-limit")
	if m[1] != "" {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return nil
		}
		out["x-delivery-limit"] = n
	}
	if _, had := args["x-delivery-limit"]; !had && m[1] == "" {
		return nil // nothing would change
	}
	return out
}

// Provision declares topic's exchange and, for each group, its durable
// quorum queue bound to it, so messages published from now on are kept for
// those groups even before anyone subscribes. It is idempotent; the client
// re-declares what it provisioned after a reconnect. It returns when ctx
// ends, and fails with an error wrapping messaging.ErrUnavailable when no
// connection comes within unavailable_timeout of the call or, the
// connection lost during the call, of the loss (the broker unreachable;
// the client goes on redialling; a connection that comes in time gets the
// call made again on it), or once the broker has
// blocked the connection (a resource alarm: it answers nothing then) for
// unavailable_timeout, counted from the call or the block, whichever began
// later; what was sent goes on in the background. On a connection Open
// dialled, it fails so too once the broker has sent nothing for
// unavailable_timeout, counted from the call or the broker's last answer,
// whichever is later (a silent broker; a slow one answering each request
// in time is waited for): the connection is closed then and the client
// redials (see the package documentation).
func (c *Client) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "provision", topic, groups...); err != nil {
		return err
	}
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("rabbitmq: provision: topic: %w", err)
	}
	err := c.conn.channelBounded(ctx, time.Now(), topic, func(ch *amqp.Channel, gen uint64, _ *blockWatch) error {
		defer func() { _ = ch.Close() }()
		if err := c.declareTopic(ctx, ch, topic); err != nil {
			return err
		}
		c.declared.Store(topic, gen)
		for _, g := range groups {
			nch, err := c.declareGroup(ctx, ch, topic, g, 0)
			if nch != ch {
				_ = ch.Close()
				ch = nch
			}
			if err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: provision %s: %w", topic, err)
	}
	c.mu.Lock()
	set := c.provisioned[topic]
	if set == nil {
		set = map[string]bool{}
		c.provisioned[topic] = set
	}
	for _, g := range groups {
		set[g] = true
	}
	c.mu.Unlock()
	return nil
}

// redeclare re-declares the provisioned topology on a new connection,
// before the client uses it (a hook of the connector): for at most the
// unavailable timeout, and no longer once the client is closing. What is
// left then goes on in the background, so that a slow link or broker keeps
// neither the client from its connection (Publish, the topology calls and
// the subscriptions waiting for it fail after the same timeout) nor Close
// waiting.
func (c *Client) redeclare(conn *amqp.Connection) {
	c.mu.Lock()
	topo := make(map[string][]string, len(c.provisioned))
	for t, gs := range c.provisioned {
		for g := range gs {
			topo[t] = append(topo[t], g)
		}
		if gs != nil && len(gs) == 0 {
			topo[t] = nil
		}
	}
	c.mu.Unlock()
	if len(topo) == 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.redeclareOn(conn, topo)
	}()
	t := time.NewTimer(c.cfg.unavailable)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.cfg.logger.Warn("rabbitmq: re-declaring topology after reconnect takes longer than unavailable_timeout; going on in the background", "timeout", c.cfg.unavailable)
	case <-c.conn.closing:
	}
}

// redeclareOn declares topo (topic -> groups) on conn, logging its errors
// unless the client is closed.
func (c *Client) redeclareOn(conn *amqp.Connection, topo map[string][]string) {
	warn := func(err error, args ...any) {
		if !c.closed.Load() {
			c.cfg.logger.Warn("rabbitmq: re-declaring topology after reconnect", append(args, "error", err)...)
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		warn(err)
		return
	}
	defer func() { _ = ch.Close() }()
	for t, gs := range topo {
		err := declareExchange(ch, t)
		for _, g := range gs {
			if err != nil {
				break
			}
			q := groupQueue(t, g)
			if _, err = ch.QueueDeclare(q, true, false, false, false, c.groupArgs(0)); err == nil {
				err = ch.QueueBind(q, "#", t, false, nil)
			}
		}
		if err != nil {
			warn(err, "topic", t)
			if ch.IsClosed() {
				nch, err := conn.Channel()
				if err != nil {
					return // the connection is lost: the next one re-declares
				}
				ch = nch
			}
		}
	}
}

// DeleteTopic deletes topic's exchange and every queue created for it by
// this library (group queues, retry queues, the stream queue, as recorded in
// the topic's registry queue), with the messages they hold. Deleting a topic
// that does not exist is not an error. Subscriptions and reads still running on
// the topic, in any process, end with an error wrapping
// messaging.ErrTopicDeleted: those of a deleted queue when the broker
// cancels their consumer, those without a group when they receive the
// message DeleteTopic publishes to the exchange before deleting it (see
// tellDeleted and the package documentation). It is
// bounded as Provision is: by ctx, and by unavailable_timeout without a
// connection, of a block or of a silent broker (messaging.ErrUnavailable),
// after which the deletion goes on in the background.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "delete topic", topic); err != nil {
		return err
	}
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("rabbitmq: delete topic: %w", err)
	}
	// A Publish from now on declares the topic again, after this call's
	// work (see outlived), rather than sending to an exchange about to be
	// deleted.
	c.declared.Delete(topic)
	// The queue names read from the registry (which they leave) are kept
	// for a run again on the next connection after a loss.
	names := map[string]bool{}
	err := c.conn.channelBounded(ctx, time.Now(), topic, func(ch *amqp.Channel, _ uint64, _ *blockWatch) error {
		return c.deleteTopic(ctx, ch, topic, names)
	}, nil)
	var named namedErr
	switch {
	case errors.As(err, &named):
		return named.error
	case err != nil:
		return fmt.Errorf("rabbitmq: delete topic %s: %w", topic, err)
	}
	return nil
}

// namedErr is an error whose message already names the operation that
// failed: DeleteTopic returns it as it is.
type namedErr struct{ error }

func (e namedErr) Unwrap() error { return e.error }

// deleteTopic is DeleteTopic on ch, which it closes; it adds the queue
// names it reads from the registry to names, the names of an earlier
// run's included.
func (c *Client) deleteTopic(ctx context.Context, ch *amqp.Channel, topic string, names map[string]bool) error {
	defer func() { _ = ch.Close() }()
	// After an error the broker closed ch: go on with a new one.
	reopen := func() error {
		nch, err := c.conn.channelNow()
		if err != nil {
			return err
		}
		_ = ch.Close()
		ch = nch
		return nil
	}
	reg := registryQueue(topic)
	// Read without acknowledging: should this call fail before the end,
	// its channel's close gives the names back to the registry for the
	// next call; at the end the registry is deleted with them.
	for {
		d, ok, err := ch.Get(reg, false)
		if err != nil {
			if !isCode(err, amqp.NotFound) {
				return namedErr{fmt.Errorf("rabbitmq: delete topic %s: read registry: %w", topic, err)}
			}
			if err := reopen(); err != nil {
				return err
			}
			break
		}
		if !ok {
			break
		}
		names[string(d.Body)] = true
	}
	c.mu.Lock()
	for g := range c.provisioned[topic] {
		names[groupQueue(topic, g)] = true
	}
	delete(c.provisioned, topic)
	c.mu.Unlock()
	names[streamQueue(topic)] = true
	delete(names, reg)
	// The registry last: a call cut before the end leaves it, with the
	// names it has not deleted yet, to the next call.
	for _, q := range append(slices.Collect(maps.Keys(names)), reg) {
		c.registered.Delete(q)
		c.mismatched.Delete(q)
		c.undead.Delete(q)
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			if !isCode(err, amqp.NotFound) {
				return namedErr{fmt.Errorf("rabbitmq: delete topic %s: delete queue %q: %w", topic, q, err)}
			}
			if err := reopen(); err != nil {
				return err
			}
		}
	}
	if err := c.tellDeleted(ch, topic, reopen); err != nil {
		return err
	}
	c.declared.Delete(topic)
	if err := ch.ExchangeDelete(topic, false, false); err != nil && !isCode(err, amqp.NotFound) {
		return namedErr{fmt.Errorf("rabbitmq: delete topic %s: delete exchange: %w", topic, err)}
	}
	return nil
}

// tellDeleted publishes the topic-deleted message (header hdrDeleted) to
// topic's exchange on ch, which it puts in confirm mode, and waits for the
// broker's confirm: every queue still bound to the exchange then holds it
// behind the messages published before. deleteTopic calls it once the
// topic's known queues are deleted (which ends their consumers) and before
// deleting the exchange, which tells no one: the exclusive queue of a
// group-less subscription, which no other connection may delete, would
// lose its binding silently and the subscription go on for ever, deaf.
// Such a subscription ends when it receives the message; a group's
// subscription and a stream reader, whose queue was declared after the
// registry was read or whose deletion was cut short, skip it. A missing
// exchange (the topic does not exist, or is deleted meanwhile) makes the
// broker close ch: reopen gives the call a new one, and there is no one to
// tell.
func (c *Client) tellDeleted(ch *amqp.Channel, topic string, reopen func() error) error {
	failed := func(err error) error {
		return namedErr{fmt.Errorf("rabbitmq: delete topic %s: tell its subscriptions: %w", topic, err)}
	}
	if err := ch.Confirm(false); err != nil {
		return failed(err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	dc, err := ch.PublishWithDeferredConfirm(topic, "", false, false, amqp.Publishing{Headers: amqp.Table{hdrDeleted: topic}})
	if err != nil {
		return failed(err)
	}
	// Not cut short by the call's context, as register: a lost channel or
	// connection ends the wait.
	if ok, _ := dc.WaitContext(context.Background()); ok {
		return nil
	}
	select {
	case e, isErr := <-closed:
		if isErr && e != nil && e.Code == amqp.NotFound {
			return reopen()
		}
		if isErr && e != nil {
			return failed(e)
		}
		return failed(ErrConnectionLost)
	default:
		return failed(ErrNacked)
	}
}
