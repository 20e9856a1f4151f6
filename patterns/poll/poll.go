// Package poll keeps a topic in sync with an external system that cannot
// push (no webhooks): a Poller asks a Source for what changed since its
// cursor, publishes each new item as a message, and saves the cursor (and the
// HTTP ETag) in a checkpoint store after each published page.
//
// Restarts resume at the saved cursor, so items already published are not
// fetched again. The one window for a repeat is a crash after a page was
// published and before its checkpoint was saved; the page is then published
// again with the same message IDs (each message's ID is the item's ID), so
// consumers deduplicating by ID, and brokers with ID-based deduplication,
// drop the repeats.
package poll

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/codec"
)

// Item is one record of the external system.
type Item[T any] struct {
	// ID identifies the record version; it becomes the message ID. Use an ID
	// that changes when the record does (id + version / updated-at) if every
	// change must be published.
	ID string
	// Key orders messages of one record (optional).
	Key string
	// Value is published, encoded with the Poller's codec.
	Value T
}

// Page is one answer of a Source.
type Page[T any] struct {
	Items []Item[T]
	// Cursor is where the next fetch starts.
	Cursor string
	// ETag, when the source has one, is sent back on the next fetch of the
	// same cursor so the server can answer "not modified".
	ETag string
	// NotModified reports that nothing changed (HTTP 304); Items is empty.
	NotModified bool
	// More reports that further pages are available right away.
	More bool
}

// Source fetches what changed after cursor (empty: from the beginning).
// etag is the ETag of the previous answer for the same cursor, or empty.
type Source[T any] interface {
	Fetch(ctx context.Context, cursor, etag string) (Page[T], error)
}

// SourceFunc adapts a function to Source.
type SourceFunc[T any] func(ctx context.Context, cursor, etag string) (Page[T], error)

// Fetch calls f.
func (f SourceFunc[T]) Fetch(ctx context.Context, cursor, etag string) (Page[T], error) {
	return f(ctx, cursor, etag)
}

// Option configures a Poller.
type Option func(*config)

type config struct {
	store    checkpoint.Store
	interval time.Duration
	codec    codec.Codec
	logger   *slog.Logger
	maxPages int
}

// WithStore sets where the cursor is saved (default: a checkpoint.Memory,
// which does not survive the process).
func WithStore(s checkpoint.Store) Option { return func(c *config) { c.store = s } }

// WithInterval sets the pause between polls in Run once the source is caught
// up (default 5s).
func WithInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithCodec sets the payload codec (default codec.JSON).
func WithCodec(cd codec.Codec) Option { return func(c *config) { c.codec = cd } }

// WithLogger sets where Run reports failed polls (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Poller copies a Source into a topic. Its methods must not be called
// concurrently with each other (one Poller per source and checkpoint name).
type Poller[T any] struct {
	name  string
	src   Source[T]
	pub   messaging.Publisher
	topic string
	cfg   config
}

// New returns a Poller named name (the checkpoint's name, a valid topic-style
// name) that publishes src's items to topic.
func New[T any](name string, src Source[T], pub messaging.Publisher, topic string, opts ...Option) (*Poller[T], error) {
	if err := messaging.ValidateName(name); err != nil {
		return nil, fmt.Errorf("poll: name: %w", err)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("poll: topic: %w", err)
	}
	if src == nil || pub == nil {
		return nil, fmt.Errorf("poll: nil source or publisher: %w", messaging.ErrInvalidOption)
	}
	cfg := config{interval: 5 * time.Second, codec: codec.JSON, logger: slog.Default(), maxPages: 1000}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.store == nil {
		cfg.store = &checkpoint.Memory{}
	}
	if cfg.interval <= 0 {
		return nil, fmt.Errorf("poll: interval %v: %w", cfg.interval, messaging.ErrInvalidOption)
	}
	return &Poller[T]{name: name, src: src, pub: pub, topic: topic, cfg: cfg}, nil
}

// Cursor returns the saved cursor (empty before the first page).
func (p *Poller[T]) Cursor(ctx context.Context) (string, error) {
	cp, _, err := p.cfg.store.Load(ctx, p.name)
	return cp.Position, err
}

// PollOnce fetches and publishes pages until the source has no more, saving
// the checkpoint after each page, and returns how many items it published.
func (p *Poller[T]) PollOnce(ctx context.Context) (int, error) {
	cp, _, err := p.cfg.store.Load(ctx, p.name)
	if err != nil {
		return 0, fmt.Errorf("poll %s: load checkpoint: %w", p.name, err)
	}
	published := 0
	for range p.cfg.maxPages {
		page, err := p.src.Fetch(ctx, cp.Position, cp.Extra)
		if err != nil {
			return published, fmt.Errorf("poll %s: fetch after cursor %q: %w", p.name, cp.Position, err)
		}
		if page.NotModified {
			return published, nil
		}
		if len(page.Items) > 0 {
			msgs := make([]*messaging.Message, len(page.Items))
			for i, it := range page.Items {
				if it.ID == "" {
					return published, fmt.Errorf("poll %s: item %d after cursor %q has no ID: %w", p.name, i, cp.Position, messaging.ErrInvalidOption)
				}
				m, err := codec.Encode(p.cfg.codec, it.Value)
				if err != nil {
					return published, fmt.Errorf("poll %s: %w", p.name, err)
				}
				m.ID, m.Key = it.ID, it.Key
				msgs[i] = m
			}
			// A page published again after a crash holds duplicates, which
			// brokers with ID-based deduplication report and drop.
			if err := messaging.IgnoreDuplicates(p.pub.Publish(ctx, p.topic, msgs...)); err != nil {
				return published, fmt.Errorf("poll %s: publish to %s: %w", p.name, p.topic, err)
			}
			published += len(msgs)
		}
		next := checkpoint.Checkpoint{Position: page.Cursor}
		if page.Cursor == cp.Position {
			// Same resource next time: its ETag lets the server say 304.
			next.Extra = page.ETag
		}
		if next.Position != cp.Position || next.Extra != cp.Extra {
			if err := p.cfg.store.Save(ctx, p.name, next); err != nil {
				return published, fmt.Errorf("poll %s: save checkpoint: %w", p.name, err)
			}
		}
		cp = next
		if !page.More {
			return published, nil
		}
	}
	return published, nil
}

// Run polls until ctx is done: PollOnce, then a pause of the interval. A
// failed poll is logged and retried after the interval. It returns nil when
// ctx is done.
func (p *Poller[T]) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := p.PollOnce(ctx); err != nil && ctx.Err() == nil {
			p.cfg.logger.Warn("poll failed", "poller", p.name, "topic", p.topic, "published", n, "error", err)
		}
		t.Reset(p.cfg.interval)
	}
}
