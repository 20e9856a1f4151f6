// Package poll keeps a topic in sync with an external system that cannot
// push (no webhooks): a Poller asks a Source for what changed since its
// cursor, publishes each new item as a message, and saves the cursor (and the
// HTTP ETag) in a checkpoint.Store after each published page.
//
// A Poller runs on the polling engine of middleware/poll (whose Source
// delivers to handlers instead of publishing): the same waits, checkpoints
// and logging. Each page is one Publish call. With WithSeen, items already
// published (by ID, remembered for WithSeenTTL) are not published again;
// without it the cursor alone decides what is new.
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

	"github.com/msgkit/messaging"
	ipoll "github.com/msgkit/messaging/internal/poll"
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
	// Cursor is where the next fetch starts ("": where this one started).
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

// Poller copies a Source into a topic. Its methods must not be called
// concurrently with each other (one Poller per source and checkpoint name).
type Poller[T any] struct {
	job ipoll.Job[*messaging.Message]
}

// New returns a Poller named name (the checkpoint's name, a valid topic-style
// name) that publishes src's items to topic. It fails with an error wrapping
// messaging.ErrInvalidOption if an argument or an option is invalid.
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
	cfg := config{engine: ipoll.NewConfig(), codec: codec.JSON}
	cfg.engine.NoDefaultSeen = true
	if err := ipoll.Apply(&cfg, opts); err != nil {
		return nil, err
	}
	if err := cfg.engine.Check(); err != nil {
		return nil, err
	}
	fetch := func(ctx context.Context, cursor, etag string) (ipoll.Page[*messaging.Message], error) {
		page, err := src.Fetch(ctx, cursor, etag)
		if err != nil {
			return ipoll.Page[*messaging.Message]{}, err
		}
		msgs := make([]*messaging.Message, len(page.Items))
		for i, it := range page.Items {
			if it.ID == "" {
				return ipoll.Page[*messaging.Message]{}, fmt.Errorf("poll: item %d has no ID: %w", i, messaging.ErrInvalidOption)
			}
			m, err := codec.Encode(cfg.codec, it.Value)
			if err != nil {
				return ipoll.Page[*messaging.Message]{}, fmt.Errorf("poll: item %s: %w", it.ID, err)
			}
			m.ID, m.Key = it.ID, it.Key
			msgs[i] = m
		}
		return ipoll.Page[*messaging.Message]{Items: msgs, Cursor: page.Cursor, ETag: page.ETag, NotModified: page.NotModified, More: page.More}, nil
	}
	publish := func(ctx context.Context, msgs []*messaging.Message) (int, error) {
		// A page published again after a crash holds duplicates, which
		// brokers with ID-based deduplication report and drop. A page is
		// one Publish call: all of it or, on an error, none counts.
		if err := messaging.IgnoreDuplicates(pub.Publish(ctx, topic, msgs...)); err != nil {
			return 0, fmt.Errorf("poll: %s: publish to %s: %w", name, topic, err)
		}
		return len(msgs), nil
	}
	return &Poller[T]{job: ipoll.Job[*messaging.Message]{
		Config:  cfg.engine,
		Name:    name,
		Fetch:   fetch,
		ID:      func(m *messaging.Message) string { return m.ID },
		Deliver: publish,
		Attrs:   []any{"poller", name, "topic", topic},
	}}, nil
}

// Cursor returns the saved cursor (empty before the first page).
func (p *Poller[T]) Cursor(ctx context.Context) (string, error) {
	cp, _, err := p.job.Store.Load(ctx, p.job.Name)
	return cp.Position, err
}

// PollOnce fetches and publishes pages until the source has no more (a
// page without More, or not modified), saving the checkpoint after each
// page, and returns how many items it published.
func (p *Poller[T]) PollOnce(ctx context.Context) (int, error) {
	return p.job.Round(ctx)
}

// Run polls until ctx is done: PollOnce, then a pause of WithInterval,
// doubling (up to WithMaxInterval) while polls publish nothing, each
// randomized by WithJitter (±20% by default). A failed poll is logged and
// retried after a pause growing the same way. It returns nil when ctx is
// done.
func (p *Poller[T]) Run(ctx context.Context) error {
	_ = p.job.Run(ctx) // returns only when ctx is done
	return nil
}
