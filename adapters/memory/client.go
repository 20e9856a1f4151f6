package memory

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/driver/urlparam"
	"github.com/msgkit/messaging/engine"
)

// defaultPrefetch is how many messages a subscription takes ahead of its
// handlers when the Prefetch option is not given.
const defaultPrefetch = 64

func init() { messaging.Register("mem", open) }

// urlParams declares the URL query parameters open reads; doc.go documents
// each (TestURLParamsDocumented), and any other is rejected.
var urlParams = []urlparam.Param{
	{Name: "max_message_size", Doc: "largest Message.Size accepted (WithMaxMessageSize)"},
	{Name: "maxlen", Doc: "messages a topic keeps, when the named broker is created (WithMaxLen)"},
}

var (
	namedMu sync.Mutex
	named   = map[string]*Broker{}
)

func open(_ context.Context, u *url.URL, s messaging.OpenSettings) (messaging.Client, error) {
	p := urlparam.NewDeclared(u, urlParams)
	maxSize := p.Size("max_message_size", DefaultMaxMessageSize)
	maxLen := p.Int("maxlen", 0)
	if err := p.Err(); err != nil {
		return nil, err
	}
	bcfg, err := newConfig([]Option{urlparam.Named("maxlen", WithMaxLen(int64(maxLen)))})
	if err != nil {
		return nil, err
	}
	copts := []Option{urlparam.Named("max_message_size", WithMaxMessageSize(maxSize))}
	if s.Logger != nil {
		copts = append(copts, WithLogger(s.Logger))
	}
	ccfg, err := newConfig(copts)
	if err != nil {
		return nil, err
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: mem URL takes a broker name as host, not a path (%q)", messaging.ErrInvalidURL, u.Path)
	}
	name := u.Host
	if name == "" {
		name = "default"
	}
	namedMu.Lock()
	b, ok := named[name]
	if !ok {
		b = newBroker(bcfg)
		named[name] = b
	}
	namedMu.Unlock()
	return b.newClient(ccfg), nil
}

// Client publishes to and consumes from a Broker. It implements
// messaging.Client, messaging.BatchConsumer, messaging.Stream,
// messaging.Provisioner, messaging.TopicDeleter, messaging.Shutdowner,
// messaging.Inspector and messaging.TopicLister, and is safe for concurrent use. Its consumer side is the library's engine
// (package engine) over the driver in driver.go.
type Client struct {
	*engine.Consumer // Subscribe, SubscribeBatch, Read, Shutdown
	b                *Broker
	cfg              config
	// closed is set by Close once the consumer side has stopped: the
	// handlers Close (or a Shutdown) waits for may still publish.
	closed atomic.Bool
	// killed is set, and kill closed, by Kill.
	killed   atomic.Bool
	kill     chan struct{}
	killOnce sync.Once
	// async counts the PublishAsync calls whose callback has not
	// returned yet, for Flush (publish_async.go).
	async asyncCalls
}

// New returns a client of a new private broker. It takes the options of
// both NewBroker and Broker.NewClient and fails with an error wrapping
// messaging.ErrInvalidOption on an invalid one.
func New(opts ...Option) (*Client, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newBroker(cfg).newClient(cfg), nil
}

// NewClient returns a client of b. Only Client options apply (WithMaxMessageSize,
// WithLogger): a Broker option (WithMaxLen) makes it fail with
// messaging.ErrInvalidOption, as does an invalid value.
func (b *Broker) NewClient(opts ...Option) (*Client, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.brokerOpt != "" {
		return nil, fmt.Errorf("memory: Broker.NewClient: %s applies to a Broker (NewBroker or New), not to a Client: %w", cfg.brokerOpt, messaging.ErrInvalidOption)
	}
	return b.newClient(cfg), nil
}

func (b *Broker) newClient(cfg config) *Client {
	c := &Client{b: b, cfg: cfg, kill: make(chan struct{})}
	c.Consumer = engine.New(memDriver{c}, engine.Options{Name: "memory", Logger: c.cfg.logger, DefaultPrefetch: defaultPrefetch})
	return c
}

var (
	_ messaging.TopicDeleter  = (*Client)(nil)
	_ messaging.Client        = (*Client)(nil)
	_ messaging.Stream        = (*Client)(nil)
	_ messaging.Provisioner   = (*Client)(nil)
	_ messaging.BatchConsumer = (*Client)(nil)
	_ messaging.Shutdowner    = (*Client)(nil)
)

// Capabilities reports what the memory adapter guarantees.
func (c *Client) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{
		Persistent:     false,
		Groups:         true,
		Replay:         true,
		GroupStartAt:   true,
		ReplayByTime:   true,
		PerKeyOrder:    true,
		AckDeadline:    true,
		BrokerAttempts: true,
		NativeDelay:    true,
		MaxMessageSize: c.cfg.maxMessageSize,

		PublishAssignsID: true, // driver.PreparePublish
	}
}

// Publish appends msgs to topic's log; it returns once they are there.
// With a ctx already ended it appends nothing and fails with an error
// naming topic and wrapping ctx's.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if c.closed.Load() {
		return fmt.Errorf("memory: publish: %w", messaging.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish to %s: %w", topic, err)
	}
	if err := driver.PreparePublish(topic, msgs, c.cfg.maxMessageSize); err != nil {
		return err
	}
	if len(msgs) > 0 {
		c.b.topic(topic).append(msgs)
	}
	return nil
}

// Provision creates topic and groups (starting at the current end of the log
// would lose what is published before; they start at Earliest).
func (c *Client) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "provision", topic, groups...); err != nil {
		return err
	}
	t := c.b.topic(topic)
	for _, g := range groups {
		if _, err := t.group(g, false, messaging.Earliest); err != nil {
			return err
		}
	}
	return nil
}

// DeleteTopic removes topic, its log and its groups from the broker.
// Subscriptions and reads on it end with an error wrapping
// messaging.ErrTopicDeleted; publishing to the name creates a new topic.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "delete topic", topic); err != nil {
		return err
	}
	c.b.mu.Lock()
	t := c.b.topics[topic]
	delete(c.b.topics, topic)
	c.b.mu.Unlock()
	if t != nil {
		t.remove()
	}
	return nil
}

// Kill simulates the crash of the process c lives in, for tests of what
// a group does when one of its consumers dies (the conformance suite's
// ack-deadline case, through its Harness.Kill): from then on c's
// subscriptions fetch nothing, and settle and extend nothing, so the
// messages they hold are redelivered to the group's other members once
// their AckDeadline passes, with Attempt incremented. The handlers still
// running are not stopped (their outcomes are ignored), Close still waits
// for them and then leaves the groups, and publishing still works. Kill is
// idempotent and cannot be undone.
func (c *Client) Kill() {
	c.killOnce.Do(func() {
		c.killed.Store(true)
		close(c.kill)
	})
}

// Close stops every subscription of this client (handlers in flight finish,
// and can still publish, and are settled), then makes further calls fail
// with ErrClosed. The broker and its messages stay. Close is idempotent.
func (c *Client) Close() error {
	err := c.Consumer.Close()
	c.closed.Store(true)
	return err
}
