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
// once (draining pages); after a fetch with no new items it waits Interval,
// growing the wait (times 2, up to MaxInterval) while results stay empty;
// after an error it backs off the same way. Every wait gets Jitter. Items
// already handled (by ID, remembered in a dedupe.Store for SeenTTL) are
// skipped, so an API that returns overlapping pages, or a restart before the
// cursor was saved, does not deliver an item twice after it succeeded.
//
// Delivery is at-least-once and in order: items are handled one at a time in
// the order the fetch returned them. A handler error redelivers the item
// (Attempt+1) after its RetryAfter delay, or the Source's backoff, before
// the next item; messaging.Permanent or the MaxAttempts subscribe option
// gives it up (it is then remembered as handled and logged). Subscribe
// options other than Group and MaxAttempts are ignored.
//
// The cursor and the seen items are kept per topic and group name, in the
// stores given (in memory by default: use the Redis stores to survive
// restarts). Run one subscription per topic and group: two pollers sharing a
// cursor would both deliver every item.
package poll

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
	"github.com/msgkit/messaging/internal/prepare"
	"github.com/msgkit/messaging/middleware/dedupe"
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

// Defaults.
const (
	DefaultInterval    = 5 * time.Second
	DefaultMaxInterval = time.Minute
	DefaultJitter      = 0.2
	DefaultSeenTTL     = 7 * 24 * time.Hour
)

// Option configures a Source.
type Option func(*Source)

// Interval is the wait after a fetch without new items (default 5s).
func Interval(d time.Duration) Option {
	return func(s *Source) {
		if d > 0 {
			s.interval = d
		}
	}
}

// MaxInterval caps the waits that grow after empty fetches and errors
// (default 1m; raised to Interval when lower).
func MaxInterval(d time.Duration) Option { return func(s *Source) { s.maxInterval = d } }

// Jitter randomizes each wait within ±f of it (default 0.2, clamped to [0,1]).
func Jitter(f float64) Option { return func(s *Source) { s.jitter = min(max(f, 0), 1) } }

// Cursors sets where cursors are kept (default an in-memory store).
func Cursors(cs CursorStore) Option { return func(s *Source) { s.cursors = cs } }

// Seen sets where handled item IDs are remembered (default in memory).
func Seen(st dedupe.Store) Option { return func(s *Source) { s.seen = st } }

// SeenTTL is how long a handled item ID is remembered (default 7 days).
func SeenTTL(d time.Duration) Option {
	return func(s *Source) {
		if d > 0 {
			s.seenTTL = d
		}
	}
}

// WithLogger sets where the Source reports fetch errors and given-up items
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// Source polls a FetchFunc; see the package documentation. It implements
// messaging.Consumer and is safe for concurrent use.
type Source struct {
	fetch       FetchFunc
	interval    time.Duration
	maxInterval time.Duration
	jitter      float64
	cursors     CursorStore
	seen        dedupe.Store
	seenTTL     time.Duration
	log         *slog.Logger
	subs        dispatch.Set
	closed      atomic.Bool
	mu          sync.Mutex
	active      map[string]bool
}

var _ messaging.Consumer = (*Source)(nil)

// NewSource returns a Source calling fetch. It panics if fetch is nil.
func NewSource(fetch FetchFunc, opts ...Option) *Source {
	if fetch == nil {
		panic("poll: nil FetchFunc")
	}
	s := &Source{
		fetch: fetch, interval: DefaultInterval, maxInterval: DefaultMaxInterval, jitter: DefaultJitter,
		seenTTL: DefaultSeenTTL, log: slog.Default(), active: map[string]bool{},
	}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	s.maxInterval = max(s.maxInterval, s.interval)
	if s.cursors == nil {
		s.cursors = NewMemoryCursorStore()
	}
	if s.seen == nil {
		s.seen = dedupe.NewMemoryStore()
	}
	return s
}

// Subscribe starts polling for h under topic (the name the items are
// delivered as, and with the group, the name of the cursor). It fails with
// an error wrapping messaging.ErrInvalidOption when a subscription with the
// same topic and group is running on this Source.
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
	name := topic + "/" + o.Group
	s.mu.Lock()
	if s.active[name] {
		s.mu.Unlock()
		return nil, fmt.Errorf("poll: subscribe: %s group %q is already being polled: %w", topic, o.Group, messaging.ErrInvalidOption)
	}
	s.active[name] = true
	s.mu.Unlock()
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() {
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
	p := &poller{s: s, sub: sub, topic: topic, o: o, name: name, h: h}
	go func() { sub.Finish(p.run()) }()
	return sub, nil
}

// Close stops every subscription (the handlers in flight finish) and makes
// Subscribe fail with ErrClosed. It does not close the stores.
func (s *Source) Close() error {
	s.closed.Store(true)
	s.subs.CloseAll()
	return nil
}

type poller struct {
	s     *Source
	sub   *dispatch.Subscription
	topic string
	o     messaging.SubscribeOptions
	name  string
	h     messaging.Handler
}

// wait sleeps d with jitter, or until the subscription stops.
func (p *poller) wait(d time.Duration) error {
	if j := p.s.jitter; j > 0 && d > 0 {
		d = time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.sub.FetchContext().Done():
		return p.sub.FetchContext().Err()
	case <-t.C:
		return nil
	}
}

func (p *poller) newBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: p.s.interval, Multiplier: 2, MaxInterval: p.s.maxInterval}
}

func (p *poller) run() error {
	ctx := p.sub.FetchContext()
	errWait := p.newBackoff()
	var cursor string
	for {
		c, err := p.s.cursors.Load(ctx, p.name)
		if err == nil {
			cursor = c
			break
		}
		p.s.log.Warn("poll: loading cursor failed", "topic", p.topic, "group", p.o.Group, "error", err)
		if err := p.wait(errWait.NextBackOff()); err != nil {
			return err
		}
	}
	errWait.Reset()
	emptyWait := p.newBackoff()
	for {
		items, next, err := p.fetchSafe(ctx, cursor)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.s.log.Warn("poll: fetch failed", "topic", p.topic, "group", p.o.Group, "error", err)
			if err := p.wait(errWait.NextBackOff()); err != nil {
				return err
			}
			continue
		}
		errWait.Reset()
		fresh := 0
		for _, it := range items {
			n, err := p.deliver(ctx, it)
			if err != nil {
				return err // stopping: the cursor stays where it was
			}
			fresh += n
		}
		if next != "" && next != cursor {
			if err := p.s.cursors.Save(ctx, p.name, next); err != nil {
				// The items are handled and remembered as seen: fetching again
				// from the old cursor skips them.
				p.s.log.Warn("poll: saving cursor failed", "topic", p.topic, "group", p.o.Group, "error", err)
			} else {
				cursor = next
			}
		}
		if fresh > 0 {
			emptyWait.Reset()
			continue
		}
		if err := p.wait(emptyWait.NextBackOff()); err != nil {
			return err
		}
	}
}

func (p *poller) fetchSafe(ctx context.Context, cursor string) (items []Item, next string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("poll: fetch panicked: %v", r)
		}
	}()
	return p.s.fetch(ctx, cursor)
}

// deliver hands one item to the handler until it is acknowledged or given
// up; it returns 1 if the item was new, and an error only when the
// subscription stops first.
func (p *poller) deliver(ctx context.Context, it Item) (int, error) {
	key := p.name + "/" + it.ID
	if it.ID != "" {
		st, err := p.s.seen.Claim(ctx, key, time.Hour)
		for err != nil {
			p.s.log.Warn("poll: seen store failed", "topic", p.topic, "group", p.o.Group, "error", err)
			if err := p.wait(p.s.interval); err != nil {
				return 0, err
			}
			st, err = p.s.seen.Claim(ctx, key, time.Hour)
		}
		if st == dedupe.StateDone {
			return 0, nil
		}
		// StateInProgress can only be left by a crashed earlier run of this
		// poller (one poller per name): deliver again.
	}
	msg := &messaging.Message{ID: it.ID, Key: it.Key, Payload: it.Payload, Header: it.Header, Topic: p.topic, Group: p.o.Group, Time: it.Time}
	if msg.ID == "" {
		msg.ID = prepare.NewID()
	}
	if msg.Time.IsZero() {
		msg.Time = time.Now()
	}
	retryWait := p.newBackoff()
	for attempt := 1; ; attempt++ {
		m := msg.Clone()
		m.Attempt = attempt
		r := dispatch.Invoke(p.sub.HandlerContext(), p.h, m, p.o.MaxAttempts)
		switch r.Outcome {
		case dispatch.Ack, dispatch.Term:
			if r.Outcome == dispatch.Term {
				p.s.log.Warn("poll: item given up", "topic", p.topic, "group", p.o.Group, "id", msg.ID, "attempt", attempt, "error", r.Err)
			}
			if it.ID != "" {
				sctx, cancel := dispatch.SettleContext(ctx, 10*time.Second)
				if err := p.s.seen.Complete(sctx, key, p.s.seenTTL); err != nil {
					p.s.log.Warn("poll: recording a handled item failed; it may be delivered again", "id", msg.ID, "error", err)
				}
				cancel()
			}
			return 1, nil
		}
		d := r.Delay
		if d == 0 {
			d = retryWait.NextBackOff()
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if err := p.wait(d); err != nil {
			return 0, err
		}
	}
}
