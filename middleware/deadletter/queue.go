package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/messaging"
)

// Queue inspects and redrives the dead letters of one dead-letter topic. It
// needs a client whose adapter implements messaging.Stream. Its methods are
// safe for concurrent use; concurrent redrives of the same letter may both
// republish it (a duplicate, never a loss).
type Queue struct {
	pub    messaging.Publisher
	stream messaging.Stream
	topic  string
}

// NewQueue returns the Queue of topic on c. It returns an error wrapping
// messaging.ErrUnsupported when c does not implement messaging.Stream or its
// capabilities do not claim Replay (List then fails the same way if the
// adapter turns out to lack replay for this topic), and
// one wrapping messaging.ErrInvalidTopic for a bad topic name.
func NewQueue(c messaging.Client, topic string) (*Queue, error) {
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("deadletter: queue: %w", err)
	}
	s, ok := c.(messaging.Stream)
	if !ok || !c.Capabilities().Replay {
		return nil, fmt.Errorf("deadletter: queue %s: listing dead letters needs messaging.Stream (replay), which this adapter lacks: %w", topic, messaging.ErrUnsupported)
	}
	return &Queue{pub: c, stream: s, topic: topic}, nil
}

// Topic is the dead-letter topic.
func (q *Queue) Topic() string { return q.topic }

// List returns the dead letters not yet redriven, oldest first. It reads the
// topic from its start up to a marker it appends first, so it sees every
// letter stored before the call; on a partitioned topic (Kafka with several
// partitions) letters in other partitions than the marker's may be missed:
// give dead-letter topics one partition. ctx bounds the read.
func (q *Queue) List(ctx context.Context) ([]Entry, error) {
	marker := &messaging.Message{Header: messaging.Header{HeaderControl: "marker"}}
	if err := q.pub.Publish(ctx, q.topic, marker); err != nil {
		return nil, fmt.Errorf("deadletter: list %s: publish marker: %w", q.topic, err)
	}
	var p pending
	reached := make(chan struct{})
	errStop := errors.New("deadletter: marker reached")
	sub, err := q.stream.Read(ctx, q.topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		if m.Header[HeaderControl] == "marker" && m.ID == marker.ID {
			close(reached)
			return errStop
		}
		p.add(m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("deadletter: list %s: %w", q.topic, err)
	}
	defer sub.Close()
	select {
	case <-reached:
	case <-sub.Done():
		select {
		case <-reached:
		default:
			return nil, fmt.Errorf("deadletter: list %s: read ended before the marker: %w", q.topic, errOrClosed(sub.Err()))
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("deadletter: list %s: %w", q.topic, ctx.Err())
	}
	// The handler has returned errStop: the read is over, p is ours.
	<-sub.Done()
	return p.entries(), nil
}

// pending collects the pending letters of a dead-letter topic read in log
// order. It is safe for concurrent use.
type pending struct {
	mu    sync.Mutex
	order []string
	byID  map[string]Entry
}

// add applies one message of the topic: a letter is added, a "redriven"
// control message removes its letter, anything else is skipped.
func (p *pending) add(m *messaging.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID == nil {
		p.byID = map[string]Entry{}
	}
	switch m.Header[HeaderControl] {
	case "marker":
		return
	case "redriven":
		delete(p.byID, m.Header[HeaderRedriven])
		return
	}
	e, err := Parse(m)
	if err != nil {
		return // not ours: skip
	}
	if _, dup := p.byID[m.ID]; !dup {
		p.order = append(p.order, m.ID)
	}
	p.byID[m.ID] = e
}

// entries returns the pending letters, oldest first.
func (p *pending) entries() []Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Entry, 0, len(p.byID))
	for _, id := range p.order {
		if e, ok := p.byID[id]; ok {
			out = append(out, e)
		}
	}
	return out
}

// Scan returns the dead letters not yet redriven, oldest first, like List,
// but without writing anything to the topic: it reads the topic from its
// start and stops once no message has arrived for quiet (the end of the log
// is taken to be reached then). It is what inspection tools use; a letter
// the broker delivers more than quiet after the previous one is missed, so
// Redrive and RedriveAll use List, which is exact. Reading may still create
// broker-side state the adapter's Read creates (a NATS JetStream Read
// creates a missing stream: check the topic exists first). ctx bounds the
// read; quiet must be positive.
func (q *Queue) Scan(ctx context.Context, quiet time.Duration) ([]Entry, error) {
	if quiet <= 0 {
		return nil, fmt.Errorf("deadletter: scan %s: quiet %v: %w", q.topic, quiet, messaging.ErrInvalidOption)
	}
	var p pending
	arrived := make(chan struct{}, 1)
	sub, err := q.stream.Read(ctx, q.topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		p.add(m)
		select {
		case arrived <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("deadletter: scan %s: %w", q.topic, err)
	}
	defer sub.Close()
	// Elapsed time is the subject: the read ends after quiet without a message.
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for done := false; !done; {
		select {
		case <-arrived:
			timer.Reset(quiet)
		case <-timer.C:
			done = true
		case <-sub.Done():
			return nil, fmt.Errorf("deadletter: scan %s: read ended: %w", q.topic, errOrClosed(sub.Err()))
		case <-ctx.Done():
			return nil, fmt.Errorf("deadletter: scan %s: %w", q.topic, ctx.Err())
		}
	}
	_ = sub.Close() // waits for a handler in flight
	return p.entries(), nil
}

// Find returns the entry of entries whose ID, or original message ID, is
// id; an error wrapping ErrNotFound if there is none.
func (q *Queue) Find(entries []Entry, id string) (Entry, error) {
	for _, e := range entries {
		if e.Message.ID == id || e.OriginalID == id {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("%w: %s in %s", ErrNotFound, id, q.topic)
}

func errOrClosed(err error) error {
	if err == nil {
		return messaging.ErrClosed
	}
	return err
}

// Get returns the pending dead letter whose ID, or original message ID, is
// id; an error wrapping ErrNotFound if there is none.
func (q *Queue) Get(ctx context.Context, id string) (Entry, error) {
	entries, err := q.List(ctx)
	if err != nil {
		return Entry{}, err
	}
	return q.Find(entries, id)
}

// Redrive republishes the pending dead letters with the given IDs (dead
// letter IDs or original message IDs) to their original topics, and marks
// them redriven. A letter named more than once is redriven once. It
// returns how many were redriven. An ID that names no pending letter makes
// it fail with ErrNotFound before anything is republished.
func (q *Queue) Redrive(ctx context.Context, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, fmt.Errorf("deadletter: redrive: no IDs given (use RedriveAll): %w", messaging.ErrInvalidOption)
	}
	entries, err := q.List(ctx)
	if err != nil {
		return 0, err
	}
	var chosen []Entry
	seen := map[string]bool{} // dead-letter IDs chosen
	for _, id := range ids {
		found := false
		for _, e := range entries {
			if e.Message.ID == id || e.OriginalID == id {
				if !seen[e.Message.ID] {
					seen[e.Message.ID] = true
					chosen = append(chosen, e)
				}
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("deadletter: redrive: %w: %s in %s", ErrNotFound, id, q.topic)
		}
	}
	return q.redrive(ctx, chosen)
}

// RedriveAll redrives every pending dead letter and returns how many.
func (q *Queue) RedriveAll(ctx context.Context) (int, error) {
	entries, err := q.List(ctx)
	if err != nil {
		return 0, err
	}
	return q.redrive(ctx, entries)
}

// redrive republishes entries in order. Each letter is republished before it
// is marked redriven, so a failure in between redrives it again next time
// (a duplicate, never a loss).
func (q *Queue) redrive(ctx context.Context, entries []Entry) (int, error) {
	n := 0
	for _, e := range entries {
		m := RedriveMessage(e)
		if err := q.pub.Publish(ctx, e.Topic, m); err != nil {
			return n, fmt.Errorf("deadletter: redrive %s to %s: %w", e.Message.ID, e.Topic, err)
		}
		mark := &messaging.Message{Header: messaging.Header{HeaderControl: "redriven", HeaderRedriven: e.Message.ID}}
		if err := q.pub.Publish(ctx, q.topic, mark); err != nil {
			return n, fmt.Errorf("deadletter: redrive %s: republished as %s but not marked redriven: %w", e.Message.ID, m.ID, err)
		}
		n++
	}
	return n, nil
}

// RedriveMessage returns the message a redrive of e publishes: payload, key
// and headers of the original, dead-letter headers removed, no ID (a new one
// is assigned on publish).
func RedriveMessage(e Entry) *messaging.Message {
	return &messaging.Message{
		Key:     e.Message.Key,
		Payload: append([]byte(nil), e.Message.Payload...),
		Header:  Strip(e.Message.Header),
	}
}
