package memory

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
	"github.com/msgkit/messaging/internal/prepare"
	"github.com/msgkit/messaging/internal/urlparam"
)

// defaultPrefetch is how many messages a subscription takes ahead of its
// handlers when the Prefetch option is not given.
const defaultPrefetch = 64

// ephemeralSeq numbers the groups of group-less subscriptions;
// subscriptionSeq identifies subscriptions within groups.
var ephemeralSeq, subscriptionSeq atomic.Uint64

func init() { messaging.Register("mem", open) }

var (
	namedMu sync.Mutex
	named   = map[string]*Broker{}
)

func open(_ context.Context, u *url.URL) (messaging.Client, error) {
	p := urlparam.New(u)
	maxSize := p.Size("max_message_size", DefaultMaxMessageSize)
	retention := p.Int("retention", 0)
	if err := p.Err(); err != nil {
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
		b = NewBroker(WithRetention(retention))
		named[name] = b
	}
	namedMu.Unlock()
	return b.NewClient(WithMaxMessageSize(maxSize)), nil
}

// Client publishes to and consumes from a Broker. It implements
// messaging.Client, messaging.Stream and messaging.Provisioner, and is safe
// for concurrent use.
type Client struct {
	b      *Broker
	cfg    config
	subs   dispatch.Set
	closed atomic.Bool
}

// New returns a client of a new private broker (see NewBroker for options).
func New(opts ...Option) *Client {
	return NewBroker(opts...).NewClient(opts...)
}

// NewClient returns a client of b.
func (b *Broker) NewClient(opts ...Option) *Client {
	return &Client{b: b, cfg: newConfig(opts)}
}

var (
	_ messaging.TopicDeleter = (*Client)(nil)
	_ messaging.Client       = (*Client)(nil)
	_ messaging.Stream       = (*Client)(nil)
	_ messaging.Provisioner  = (*Client)(nil)
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
	}
}

// Publish appends msgs to topic's log; it returns once they are there.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if c.closed.Load() {
		return fmt.Errorf("publish: %w", messaging.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := prepare.Publish(topic, msgs, c.cfg.maxMessageSize); err != nil {
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
	if c.closed.Load() {
		return fmt.Errorf("provision: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return err
	}
	t := c.b.topic(topic)
	for _, g := range groups {
		if err := messaging.ValidateName(g); err != nil {
			return fmt.Errorf("group: %w", err)
		}
		if _, err := t.group(g, false, messaging.Earliest); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe delivers topic's messages to h; see messaging.Consumer.
func (c *Client) Subscribe(ctx context.Context, topicName string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeArgs(c.closed.Load(), topicName, h, defaultPrefetch, opts)
	if err != nil {
		return nil, err
	}
	return c.subscribe(ctx, topicName, o, func(sub *dispatch.Subscription, id uint64, t *topic, g *group, settle dispatch.SettleFunc) error {
		pool := dispatch.NewPool(sub.HandlerContext(), o.Concurrency, o.Prefetch-o.Concurrency, h, settle, o.MaxAttempts)
		defer pool.Close()
		return c.run(sub.FetchContext(), id, t, g, o, pool, settle)
	})
}

// SubscribeBatch delivers topic's messages to h in batches; see
// messaging.BatchConsumer.
func (c *Client) SubscribeBatch(ctx context.Context, topicName string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeBatchArgs(c.closed.Load(), topicName, h, opts)
	if err != nil {
		return nil, err
	}
	return c.subscribe(ctx, topicName, o, func(sub *dispatch.Subscription, id uint64, t *topic, g *group, settle dispatch.SettleFunc) error {
		return c.runBatches(sub, id, t, g, o, h, settle)
	})
}

// subscribe joins topic's group for o and runs deliver in the background
// until the subscription ends.
func (c *Client) subscribe(ctx context.Context, topic string, o messaging.SubscribeOptions, deliver func(*dispatch.Subscription, uint64, *topic, *group, dispatch.SettleFunc) error) (messaging.Subscription, error) {
	t := c.b.topic(topic)
	name, ephemeral := o.Group, o.Group == ""
	if ephemeral {
		name = fmt.Sprintf("_ephemeral.%d", ephemeralSeq.Add(1))
	}
	g, err := t.group(name, ephemeral, o.StartAt)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	t.join(g)
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() {
		c.subs.Remove(sub)
		t.leave(g)
	})
	if err := c.subs.Add(sub); err != nil {
		t.leave(g)
		return nil, err
	}
	settle := func(d dispatch.Delivery, r dispatch.Result) {
		dl := d.Token.(delivery)
		switch r.Outcome {
		case dispatch.Ack:
			t.settle(g, dl.off, dl.token, true, false, 0)
		case dispatch.Term:
			c.cfg.logger.Warn("memory: message not redelivered", "topic", topic, "group", o.Group, "id", dl.msg.ID, "attempt", dl.msg.Attempt, "error", r.Err)
			t.settle(g, dl.off, dl.token, true, false, 0)
		case dispatch.Nack:
			t.settle(g, dl.off, dl.token, false, false, r.Delay)
		case dispatch.Release:
			t.settle(g, dl.off, dl.token, false, true, 0)
		}
	}
	id := subscriptionSeq.Add(1)
	go func() { sub.Finish(deliver(sub, id, t, g, settle)) }()
	return sub, nil
}

// runBatches fetches batches from the group and hands each to h, one at a
// time, until the subscription stops.
func (c *Client) runBatches(sub *dispatch.Subscription, id uint64, t *topic, g *group, o messaging.SubscribeOptions, h messaging.BatchHandler, settle dispatch.SettleFunc) error {
	ctx := sub.FetchContext()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var batch []delivery
	for {
		var fill <-chan time.Time // set once the batch has its first message
		for len(batch) < o.BatchSize {
			ds, changed, wake := t.fetch(g, id, o.BatchSize-len(batch), o.AckDeadline, o.MaxAttempts, c.cfg.logger)
			if len(ds) > 0 {
				if len(batch) == 0 {
					timer.Reset(o.BatchWait)
					fill = timer.C
				}
				batch = append(batch, ds...)
				continue
			}
			var due <-chan time.Time
			if !wake.IsZero() {
				due = time.After(time.Until(wake))
			}
			select {
			case <-ctx.Done():
				for _, dl := range batch {
					settle(dispatch.Delivery{Msg: dl.msg, Token: dl}, dispatch.Result{Outcome: dispatch.Release})
				}
				return ctx.Err()
			case <-changed:
				continue
			case <-due:
				continue
			case <-fill:
			}
			break
		}
		msgs := make([]*messaging.Message, len(batch))
		for i, dl := range batch {
			msgs[i] = dl.msg
		}
		for i, r := range dispatch.InvokeBatch(sub.HandlerContext(), h, msgs, o.MaxAttempts) {
			settle(dispatch.Delivery{Msg: msgs[i], Token: batch[i]}, r)
		}
		batch = batch[:0]
	}
}

// run fetches from the group and feeds the pool until ctx is done.
func (c *Client) run(ctx context.Context, id uint64, t *topic, g *group, o messaging.SubscribeOptions, pool *dispatch.Pool, settle dispatch.SettleFunc) error {
	batch := max(o.Prefetch/2, 1)
	var timer *time.Timer
	for {
		ds, changed, wake := t.fetch(g, id, batch, o.AckDeadline, o.MaxAttempts, c.cfg.logger)
		for i, dl := range ds {
			d := dispatch.Delivery{Msg: dl.msg, Token: dl}
			if !pool.Submit(ctx, d) {
				for _, rest := range ds[i:] {
					settle(dispatch.Delivery{Msg: rest.msg, Token: rest}, dispatch.Result{Outcome: dispatch.Release})
				}
				return ctx.Err()
			}
		}
		if len(ds) > 0 {
			continue
		}
		var timeout <-chan time.Time
		if !wake.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(wake))
				defer timer.Stop()
			} else {
				timer.Reset(time.Until(wake))
			}
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-timeout:
		}
	}
}

// Read delivers topic's log from "from" on, in order, to h; see
// messaging.Stream.
func (c *Client) Read(ctx context.Context, topic string, from messaging.Position, h messaging.Handler) (messaging.Subscription, error) {
	if err := dispatch.ReadArgs(c.closed.Load(), topic, from, h); err != nil {
		return nil, err
	}
	t := c.b.topic(topic)
	t.mu.Lock()
	cur, err := t.resolve(from)
	t.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		return nil, err
	}
	go func() { sub.Finish(c.read(sub, t, cur, h)) }()
	return sub, nil
}

func (c *Client) read(sub *dispatch.Subscription, t *topic, cur int64, h messaging.Handler) error {
	ctx := sub.FetchContext()
	for {
		t.mu.Lock()
		cur = max(cur, t.base)
		var batch []*entry
		for ; cur < t.end() && len(batch) < 256; cur++ {
			batch = append(batch, t.at(cur))
		}
		changed := t.changed
		t.mu.Unlock()
		for _, e := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := e.msg.Clone()
			m.Attempt = 1
			if r := dispatch.Invoke(sub.HandlerContext(), h, m, 0); r.Err != nil {
				return fmt.Errorf("read %s at offset %d: handler: %w", t.name, e.offset, r.Err)
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// DeleteTopic removes topic, its log and its groups from the broker.
// Subscriptions on it keep running on the detached state until they end.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if c.closed.Load() {
		return fmt.Errorf("delete topic: %w", messaging.ErrClosed)
	}
	c.b.mu.Lock()
	delete(c.b.topics, topic)
	c.b.mu.Unlock()
	return nil
}

// Close stops every subscription of this client (handlers in flight finish
// and are settled) and makes further calls fail with ErrClosed. The broker and
// its messages stay. Close is idempotent.
func (c *Client) Close() error {
	c.closed.Store(true)
	c.subs.CloseAll()
	return nil
}
