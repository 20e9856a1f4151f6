// Package poll turns systems that cannot push into messages, and consumes
// topics on a schedule instead of in real time.
//
// # Source
//
// A Source calls a FetchFunc with a cursor, delivers the items it returns as
// messages to the handler of each subscription, and saves the cursor the
// fetch returned once every item of the fetch has been handled, so a
// restart resumes where it stopped. It is a messaging.Consumer: retry,
// deadletter, dedupe and every other middleware wrap its handlers as they
// wrap a broker's.
//
// Polling: after a fetch that brought new items the Source fetches again at
// once (draining pages); after a fetch with no new items it waits
// WithInterval, growing the wait (times 2, up to WithMaxInterval) while
// results stay empty; after an error it backs off the same way. Every wait
// gets WithJitter. Items already handled (by ID, remembered in a
// dedupe.Store for WithSeenTTL) are skipped, so an API that returns
// overlapping pages, or a restart before the cursor was saved, does not
// deliver an item twice after it succeeded. patterns/poll's Poller runs on
// the same engine.
//
// Delivery is at-least-once and in order: items are handled one at a time in
// the order the fetch returned them. A handler error redelivers the item
// (Attempt+1) after its RetryAfter delay, or the Source's backoff, before
// the next item; messaging.Permanent or the MaxAttempts subscribe option
// gives it up (it is then remembered as handled and logged). Subscribe
// options other than Group and MaxAttempts are ignored.
//
// The cursor and the seen items are kept per topic and group, under the
// name "topic" (a subscription without Group) or "topic/group", in the
// stores given (in memory by default: use checkpoint.NewDir, which keeps
// them in <dir>/topic.json and <dir>/topic/group.json, or the Redis stores
// of package redisstore to survive restarts). The cursor is a
// checkpoint.Checkpoint's Position; a seen item's key is
// "poll:<name>:<id>", apart from the keys of middleware/dedupe, so one
// dedupe.Store can serve both. Run one subscription per topic and group:
// two pollers sharing a cursor would both deliver every item.
//
// Close (of the Source or of a subscription) and Shutdown stop fetching and
// hand no further item to the handler: the handler in flight finishes, its
// item is settled, and the rest of the fetched items, neither marked seen
// nor passed by the saved cursor, are delivered by the next subscription of
// the topic and group.
package poll

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/dispatch"
	ipoll "github.com/msgkit/messaging/internal/poll"
)

// Item is one thing fetched from the external system.
type Item struct {
	// ID identifies the item for deduplication; it becomes Message.ID. An
	// empty ID gets a new unique one (and no deduplication).
	ID      string
	Key     string
	Payload []byte
	Header  messaging.Header
	// Time becomes Message.Time; zero means the fetch time.
	Time time.Time
}

// FetchFunc fetches the items after cursor ("" the first time) and returns
// them with the cursor to resume from once they are handled ("" or the same
// cursor: keep the current one). It must honour ctx.
type FetchFunc func(ctx context.Context, cursor string) (items []Item, next string, err error)

// Source polls a FetchFunc; see the package documentation. It implements
// messaging.Consumer and is safe for concurrent use.
type Source struct {
	fetch  FetchFunc
	cfg    config
	subs   dispatch.Set
	closed atomic.Bool
	mu     sync.Mutex
	active map[string]bool
}

var _ messaging.Consumer = (*Source)(nil)

// NewSource returns a Source calling fetch. It fails with an error wrapping
// messaging.ErrInvalidOption if fetch is nil or an option is invalid.
func NewSource(fetch FetchFunc, opts ...Option) (*Source, error) {
	if fetch == nil {
		return nil, fmt.Errorf("poll: NewSource: nil FetchFunc: %w", messaging.ErrInvalidOption)
	}
	cfg := ipoll.NewConfig()
	if err := ipoll.Apply(&cfg, opts); err != nil {
		return nil, err
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return &Source{fetch: fetch, cfg: cfg, active: map[string]bool{}}, nil
}

// Subscribe starts polling for h under topic (the name the items are
// delivered as, and with the group, the name of the checkpoint: "topic", or
// "topic/group" with the Group option). It fails with an error wrapping
// messaging.ErrInvalidOption when a subscription with the same topic and
// group is running on this Source.
func (s *Source) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("poll: subscribe: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("poll: subscribe: topic: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("poll: subscribe: nil handler: %w", messaging.ErrInvalidOption)
	}
	o, err := messaging.NewSubscribeOptions(1, opts...)
	if err != nil {
		return nil, fmt.Errorf("poll: subscribe: %w", err)
	}
	name := topic
	if o.Group != "" {
		name += "/" + o.Group
	}
	s.mu.Lock()
	if s.active[name] {
		s.mu.Unlock()
		return nil, fmt.Errorf("poll: subscribe: %s group %q is already being polled: %w", topic, o.Group, messaging.ErrInvalidOption)
	}
	s.active[name] = true
	s.mu.Unlock()
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(dispatch.WithMaxAttempts(ctx, o.MaxAttempts), func() {
		s.subs.Remove(sub)
		s.mu.Lock()
		delete(s.active, name)
		s.mu.Unlock()
	})
	if err := s.subs.Add(sub); err != nil {
		s.mu.Lock()
		delete(s.active, name)
		s.mu.Unlock()
		return nil, err
	}
	d := &deliverer{cfg: &s.cfg, sub: sub, topic: topic, o: o, h: h}
	job := &ipoll.Job[Item]{
		Config: s.cfg,
		Name:   name,
		Fetch: func(ctx context.Context, cursor, _ string) (ipoll.Page[Item], error) {
			items, next, err := s.fetch(ctx, cursor)
			return ipoll.Page[Item]{Items: items, Cursor: next}, err
		},
		ID:       func(it Item) string { return it.ID },
		Handle:   d.deliver,
		DrainNew: true,
		Attrs:    []any{"topic", topic, "group", o.Group},
	}
	go func() { sub.Finish(job.Run(sub.FetchContext())) }()
	return sub, nil
}

// Close stops every subscription (the handlers in flight finish; no further
// item is handed to a handler) and makes Subscribe fail with ErrClosed. It
// does not close the stores.
func (s *Source) Close() error {
	s.closed.Store(true)
	s.subs.CloseAll()
	return nil
}

type deliverer struct {
	cfg   *config
	sub   *dispatch.Subscription
	topic string
	o     messaging.SubscribeOptions
	h     messaging.Handler
}

// deliver hands one item to the handler until it is acknowledged or given
// up; it returns an error only when the subscription stops first (ctx is
// the subscription's fetch context: no attempt starts after it ended).
func (d *deliverer) deliver(ctx context.Context, it Item) error {
	msg := &messaging.Message{ID: it.ID, Key: it.Key, Payload: it.Payload, Header: it.Header, Topic: d.topic, Group: d.o.Group, Time: it.Time}
	if msg.ID == "" {
		msg.ID = driver.NewID()
	}
	if msg.Time.IsZero() {
		msg.Time = time.Now()
	}
	retryWait := d.cfg.NewBackoff()
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := msg.Clone()
		m.Attempt = attempt
		r := dispatch.Invoke(d.sub.HandlerContext(), d.h, m, d.o.MaxAttempts)
		switch r.Outcome {
		case dispatch.Ack:
			return nil
		case dispatch.Release: // interrupted at the last attempt by the subscription's stop
			return d.sub.HandlerContext().Err()
		case dispatch.Term:
			d.cfg.Logger.Warn("poll: item given up", "topic", d.topic, "group", d.o.Group, "id", msg.ID, "attempt", attempt, "error", r.Err)
			return nil
		}
		wait := r.Delay
		if wait == 0 {
			wait = retryWait.NextBackOff()
		}
		if err := d.cfg.Wait(ctx, wait); err != nil {
			return err
		}
	}
}
