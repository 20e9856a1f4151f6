package deadletter

import (
	"context"
	"errors"
	"fmt"

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
	var order []string
	byID := map[string]Entry{}
	reached := make(chan struct{})
	errStop := errors.New("marker reached")
	sub, err := q.stream.Read(ctx, q.topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		switch m.Header[HeaderControl] {
		case "marker":
			if m.ID == marker.ID {
				close(reached)
				return errStop
			}
			return nil
		case "redriven":
			delete(byID, m.Header[HeaderRedriven])
			return nil
		}
		e, err := Parse(m)
		if err != nil {
			return nil // not ours: skip
		}
		if _, dup := byID[m.ID]; !dup {
			order = append(order, m.ID)
		}
		byID[m.ID] = e
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
	// The handler has returned errStop: the read is over, byID is ours.
	<-sub.Done()
	out := make([]Entry, 0, len(byID))
	for _, id := range order {
		if e, ok := byID[id]; ok {
			out = append(out, e)
		}
	}
	return out, nil
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
	for _, e := range entries {
		if e.Message.ID == id || e.OriginalID == id {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("%w: %s in %s", ErrNotFound, id, q.topic)
}

// Redrive republishes the pending dead letters with the given IDs (dead
// letter IDs or original message IDs) to their original topics, and marks
// them redriven. It returns how many were redriven. An ID that names no
// pending letter makes it fail with ErrNotFound before anything is
// republished.
func (q *Queue) Redrive(ctx context.Context, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, fmt.Errorf("deadletter: redrive: no IDs given (use RedriveAll): %w", messaging.ErrInvalidOption)
	}
	entries, err := q.List(ctx)
	if err != nil {
		return 0, err
	}
	var chosen []Entry
	for _, id := range ids {
		found := false
		for _, e := range entries {
			if e.Message.ID == id || e.OriginalID == id {
				chosen = append(chosen, e)
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
