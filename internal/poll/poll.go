// Package poll is the one polling engine behind middleware/poll (a Source
// that is a messaging.Consumer) and patterns/poll (a Poller that publishes
// into a topic): the fetch loop, the waits (interval, exponential backoff,
// jitter), the checkpoint (cursor and ETag) kept in a checkpoint.Store, the
// seen-ID dedupe and the logging exist here once. The front-ends only turn
// their fetch results into Pages and deliver items.
package poll

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// Defaults of the options.
const (
	DefaultInterval    = 5 * time.Second
	DefaultMaxInterval = time.Minute
	DefaultJitter      = 0.2
	DefaultSeenTTL     = 7 * 24 * time.Hour
	// MaxPages bounds the pages one Round fetches.
	MaxPages = 1000
	// claimLease is how long an item being delivered stays claimed.
	claimLease = time.Hour
)

// Config is what the options of both front-ends set.
type Config struct {
	Interval    time.Duration
	MaxInterval time.Duration
	maxSet      bool
	Jitter      float64
	Store       checkpoint.Store
	Seen        dedupe.Store // nil after Check only with NoDefaultSeen: no dedupe
	SeenTTL     time.Duration
	Logger      *slog.Logger
	// NoDefaultSeen leaves Seen nil when no WithSeen was given, for a
	// front-end whose cursor and message IDs suffice (Poller).
	NoDefaultSeen bool
}

// Option is the option shape of both front-ends.
type Option = func(*Config) error

// NewConfig returns the defaults.
func NewConfig() Config {
	return Config{Interval: DefaultInterval, Jitter: DefaultJitter, SeenTTL: DefaultSeenTTL, Logger: slog.Default()}
}

// Apply applies opts (nil ones are skipped) to c in order and returns the
// first error.
func Apply[C any, O ~func(*C) error](c *C, opts []O) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	return nil
}

// Check completes c once the options are applied: it fills in the default
// stores and checks the options against each other.
func (c *Config) Check() error {
	if !c.maxSet {
		c.MaxInterval = max(DefaultMaxInterval, c.Interval)
	} else if c.MaxInterval < c.Interval {
		return fmt.Errorf("poll: WithMaxInterval(%v): below WithInterval(%v): %w", c.MaxInterval, c.Interval, messaging.ErrInvalidOption)
	}
	if c.Store == nil {
		c.Store = &checkpoint.Memory{}
	}
	if c.Seen == nil && !c.NoDefaultSeen {
		c.Seen = dedupe.NewMemoryStore()
	}
	return nil
}

func invalid(name string, v any, why string) error {
	return fmt.Errorf("poll: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithInterval sets the first wait after a round without new items.
func WithInterval(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return invalid("WithInterval", d, "must be positive")
		}
		c.Interval = d
		return nil
	}
}

// WithMaxInterval caps the growing waits.
func WithMaxInterval(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return invalid("WithMaxInterval", d, "must be positive")
		}
		c.MaxInterval, c.maxSet = d, true
		return nil
	}
}

// WithJitter sets the randomization of the waits.
func WithJitter(f float64) Option {
	return func(c *Config) error {
		if math.IsNaN(f) || f < 0 || f > 1 {
			return invalid("WithJitter", f, "must be within [0, 1]")
		}
		c.Jitter = f
		return nil
	}
}

// WithStore sets the checkpoint store.
func WithStore(s checkpoint.Store) Option {
	return func(c *Config) error {
		if s == nil {
			return invalid("WithStore", s, "nil store")
		}
		c.Store = s
		return nil
	}
}

// WithSeen sets the store of handled item IDs.
func WithSeen(s dedupe.Store) Option {
	return func(c *Config) error {
		if s == nil {
			return invalid("WithSeen", s, "nil store")
		}
		c.Seen = s
		return nil
	}
}

// WithSeenTTL sets how long a handled item ID is remembered.
func WithSeenTTL(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return invalid("WithSeenTTL", d, "must be positive")
		}
		c.SeenTTL = d
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *Config) error {
		if l == nil {
			return invalid("WithLogger", l, "nil logger")
		}
		c.Logger = l
		return nil
	}
}

// Wait sleeps d with the configured jitter, or until ctx is done.
func (c *Config) Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(c.jittered(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// jittered is d randomized within ±Jitter of it, uniformly.
func (c *Config) jittered(d time.Duration) time.Duration {
	if j := c.Jitter; j > 0 && d > 0 {
		d = time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
	}
	return d
}

// NewBackoff returns waits growing from Interval, doubling up to MaxInterval.
func (c *Config) NewBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: c.Interval, Multiplier: 2, MaxInterval: c.MaxInterval}
}

// Page is one answer of a fetch.
type Page[I any] struct {
	Items []I
	// Cursor is where the next fetch starts; "" keeps the current one.
	Cursor string
	// ETag is sent back with the next fetch of the same cursor.
	ETag string
	// NotModified: nothing changed since the ETag (Items is empty).
	NotModified bool
	// More: further pages are available right away.
	More bool
}

// Job polls one checkpoint name.
type Job[I any] struct {
	Config
	// Name names the checkpoint and the seen IDs, whose keys in Seen are
	// "poll:" + Name + ":" + ID (see SeenKey).
	Name string
	// Fetch returns the page after cursor; etag is the ETag saved with it.
	Fetch func(ctx context.Context, cursor, etag string) (Page[I], error)
	// ID returns an item's ID; "" means no deduplication for it.
	ID func(I) string
	// Deliver handles the new items of a page, in order, in one call, and
	// returns how many of them, from the first, it delivered. Those count
	// as seen once it returns; an error stops the round before the
	// checkpoint of the page is saved. Set Deliver or Handle, not both.
	Deliver func(ctx context.Context, items []I) (int, error)
	// Handle handles one new item; the Job calls it for the items of a
	// page one at a time, in order, for a front-end that handles items one
	// by one. Each item counts as seen as soon as Handle returns nil for it
	// (a crash later in the page does not deliver it again); no item is
	// handed to it once ctx is done; an error (or ctx ending) stops the
	// round before the checkpoint of the page is saved.
	Handle func(ctx context.Context, item I) error
	// DrainNew makes a page that brought new items count as More, for
	// fetches that cannot say whether more are waiting.
	DrainNew bool
	// Attrs are added to every log record.
	Attrs []any
}

// storeTimeout bounds the store calls made after items were delivered (the
// seen claims' completion, the page's checkpoint), which go on when the
// round's ctx ends.
const storeTimeout = 10 * time.Second

// Round fetches pages from the saved checkpoint, delivers the items not seen
// before in order (with Handle one at a time), and saves the checkpoint after
// each page whose items were all delivered.
// It fetches the next page at once while the last one was marked More (or,
// with DrainNew, brought new items), and stops after any other page or one
// that was not modified (at most MaxPages pages). It returns how many items
// it delivered.
func (j *Job[I]) Round(ctx context.Context) (int, error) {
	cp, _, err := j.Store.Load(ctx, j.Name)
	if err != nil {
		return 0, fmt.Errorf("poll: %s: load checkpoint: %w", j.Name, err)
	}
	delivered := 0
	for range MaxPages {
		page, err := j.fetch(ctx, cp)
		if err != nil {
			return delivered, fmt.Errorf("poll: %s: fetch after cursor %q: %w", j.Name, cp.Position, err)
		}
		if page.NotModified {
			return delivered, nil
		}
		fresh, err := j.deliver(ctx, page.Items)
		delivered += fresh
		if err != nil {
			return delivered, err
		}
		next := checkpoint.Checkpoint{Position: page.Cursor}
		if next.Position == "" || next.Position == cp.Position {
			// Same resource next time: its ETag lets the server say 304.
			next = checkpoint.Checkpoint{Position: cp.Position, ETag: page.ETag}
		}
		if next.Position != cp.Position || next.ETag != cp.ETag {
			// The page's items are delivered: its checkpoint is saved even
			// when ctx ended meanwhile (the subscription closing), as a
			// settlement is, or they would be fetched again.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			err := j.Store.Save(sctx, j.Name, next)
			cancel()
			if err != nil {
				// The items are remembered as seen: fetching again from the
				// old cursor skips them.
				return delivered, fmt.Errorf("poll: %s: save checkpoint: %w", j.Name, err)
			}
			cp = next
		}
		if !page.More && !(j.DrainNew && fresh > 0) {
			break
		}
	}
	return delivered, nil
}

func (j *Job[I]) fetch(ctx context.Context, cp checkpoint.Checkpoint) (page Page[I], err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("poll: fetch panicked: %v", r)
		}
	}()
	return j.Fetch(ctx, cp.Position, cp.ETag)
}

// SeenKey returns the key under which the item with the given ID is
// remembered in Seen: "poll:" + Name + ":" + id. The prefix keeps the keys
// apart from middleware/dedupe's, which start with a topic (where ':' is not
// allowed), in a store shared with it; ':' ends the name, which is made of
// valid names joined by '/'.
func (j *Job[I]) SeenKey(id string) string { return "poll:" + j.Name + ":" + id }

// deliver delivers the items not seen before and returns how many.
func (j *Job[I]) deliver(ctx context.Context, items []I) (int, error) {
	if j.Handle != nil {
		return j.handleEach(ctx, items)
	}
	if j.Seen == nil {
		if len(items) == 0 {
			return 0, nil
		}
		return j.Deliver(ctx, items)
	}
	fresh := make([]I, 0, len(items))
	keys := make([]string, 0, len(items)) // per fresh item; "" for one without ID
	for _, it := range items {
		key, done, err := j.claim(ctx, it)
		if err != nil {
			j.settle(ctx, nil, keys)
			return 0, err
		}
		if !done {
			fresh, keys = append(fresh, it), append(keys, key)
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	n, err := j.Deliver(ctx, fresh)
	n = min(max(n, 0), len(fresh))
	j.settle(ctx, keys[:n], keys[n:])
	return n, err
}

// claim claims it in Seen for delivery and returns its key ("" when there is
// no Seen store or it has no ID: nothing to claim), or done when it was
// handled before.
func (j *Job[I]) claim(ctx context.Context, it I) (key string, done bool, err error) {
	id := j.ID(it)
	if j.Seen == nil || id == "" {
		return "", false, nil
	}
	key = j.SeenKey(id)
	st, err := j.Seen.Claim(ctx, key, claimLease)
	if err != nil {
		return "", false, fmt.Errorf("poll: %s: seen store: %w", j.Name, err)
	}
	// StateInProgress can only be left by a crashed earlier run of this
	// job (one job per name): deliver again.
	return key, st == dedupe.StateDone, nil
}

// handleEach hands the items not seen before to Handle one at a time, in
// order, and returns how many it handled. Each item is claimed just before
// it is handed over and its claim is completed as soon as Handle returns
// nil, so that what a crash leaves claimed is the one item in flight. It
// stops before an item once ctx is done (the subscription stopping) and
// returns ctx's error.
func (j *Job[I]) handleEach(ctx context.Context, items []I) (int, error) {
	n := 0
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		key, done, err := j.claim(ctx, it)
		if err != nil {
			return n, err
		}
		if done {
			continue
		}
		err = j.Handle(ctx, it)
		if key != "" { // settle's timeout context only for a claim
			if err != nil {
				j.settle(ctx, nil, []string{key})
			} else {
				j.settle(ctx, []string{key}, nil)
			}
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// settle completes the claims of done (delivered items) and releases those
// of undone; "" keys are items without ID.
func (j *Job[I]) settle(ctx context.Context, done, undone []string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	for _, key := range done {
		if key == "" {
			continue
		}
		if err := j.Seen.Complete(sctx, key, j.SeenTTL); err != nil {
			j.Logger.Warn("poll: recording a handled item failed; it may be delivered again", j.attrs("key", key, "error", err)...)
		}
	}
	for _, key := range undone {
		if key == "" {
			continue
		}
		if err := j.Seen.Release(sctx, key); err != nil {
			j.Logger.Warn("poll: releasing an item's claim failed", j.attrs("key", key, "error", err)...)
		}
	}
}

func (j *Job[I]) attrs(kv ...any) []any {
	return append(append([]any(nil), j.Attrs...), kv...)
}

// Run runs rounds until ctx is done, then returns ctx.Err(). After a round
// it waits Interval, doubling the wait (up to MaxInterval) while rounds
// bring nothing new; a failed round is logged and retried after a wait
// growing the same way.
func (j *Job[I]) Run(ctx context.Context) error {
	errWait, emptyWait := j.NewBackoff(), j.NewBackoff()
	for {
		n, err := j.Round(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var d time.Duration
		if err != nil {
			j.Logger.Warn("poll: polling failed", j.attrs("delivered", n, "error", err)...)
			d = errWait.NextBackOff()
		} else {
			errWait.Reset()
			if n > 0 {
				emptyWait.Reset()
			}
			d = emptyWait.NextBackOff()
		}
		if err := j.Wait(ctx, d); err != nil {
			return err
		}
	}
}
