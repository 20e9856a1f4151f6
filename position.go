package messaging

import (
	"fmt"
	"time"
)

// PositionKind says which kind of place in a log a Position names.
type PositionKind int

// The kinds of Position.
const (
	// PositionEarliest is the oldest message the broker still retains.
	PositionEarliest PositionKind = iota
	// PositionLatest is the end of the log: only messages published from now on.
	PositionLatest
	// PositionAtOffset starts at the message with the given offset, included.
	PositionAtOffset
	// PositionAfterOffset starts right after the message with the given offset,
	// as when resuming from a checkpoint.
	PositionAfterOffset
	// PositionAtTime starts at the first message published at or after a time.
	PositionAtTime
)

// Position names a place in a topic's log to start reading from. Build one
// with Earliest, Latest, AtOffset, AfterOffset or AtTime.
type Position struct {
	Kind PositionKind
	// Offset is a Message.Offset, for PositionAtOffset and PositionAfterOffset.
	Offset string
	// Time is for PositionAtTime.
	Time time.Time
}

var (
	// Earliest is the oldest retained message.
	Earliest = Position{Kind: PositionEarliest}
	// Latest is the end of the log: messages published from now on.
	Latest = Position{Kind: PositionLatest}
)

// AtOffset is the position of the message whose Message.Offset is offset.
func AtOffset(offset string) Position { return Position{Kind: PositionAtOffset, Offset: offset} }

// AfterOffset is the position right after the message whose Message.Offset is
// offset: resume from a checkpoint with it.
func AfterOffset(offset string) Position { return Position{Kind: PositionAfterOffset, Offset: offset} }

// AtTime is the position of the first message published at or after t.
func AtTime(t time.Time) Position { return Position{Kind: PositionAtTime, Time: t} }

// String describes p, for logs and errors.
func (p Position) String() string {
	switch p.Kind {
	case PositionEarliest:
		return "earliest"
	case PositionLatest:
		return "latest"
	case PositionAtOffset:
		return "offset " + p.Offset
	case PositionAfterOffset:
		return "after offset " + p.Offset
	case PositionAtTime:
		return "time " + p.Time.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("position(%d)", int(p.Kind))
}

// Validate reports an error wrapping ErrInvalidOption for a position that
// names no place: an unknown kind, an empty offset or a zero time.
func (p Position) Validate() error {
	switch p.Kind {
	case PositionEarliest, PositionLatest:
		return nil
	case PositionAtOffset, PositionAfterOffset:
		if p.Offset == "" {
			return fmt.Errorf("%w: position %v: empty offset", ErrInvalidOption, p)
		}
		return nil
	case PositionAtTime:
		if p.Time.IsZero() {
			return fmt.Errorf("%w: position at time: zero time", ErrInvalidOption)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown position kind %d", ErrInvalidOption, int(p.Kind))
}
