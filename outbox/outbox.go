package outbox

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Outbox writes messages into an outbox table within the caller's
// transactions and reads the outbox's state. It holds no connection; it is
// safe for concurrent use.
type Outbox struct {
	d Dialect
}

// New returns an Outbox over the given dialect, such as PostgreSQL("app").
// A nil d is rejected with an error wrapping messaging.ErrInvalidOption.
func New(d Dialect) (*Outbox, error) {
	if d == nil {
		return nil, fmt.Errorf("outbox: New: nil Dialect: %w", messaging.ErrInvalidOption)
	}
	return &Outbox{d: d}, nil
}

// Dialect returns the outbox's dialect.
func (o *Outbox) Dialect() Dialect { return o.d }

// Migrate creates the outbox's schema (tables, indexes, trigger) or brings
// it up to date; it is idempotent and safe to run from several processes at
// once. Operators may run the dialect's SQL file instead (PostgresSchema).
// A nil db is an error wrapping messaging.ErrInvalidOption; the database's
// errors are wrapped.
func (o *Outbox) Migrate(ctx context.Context, db *sql.DB) error {
	if db == nil {
		return fmt.Errorf("outbox: migrate: nil database: %w", messaging.ErrInvalidOption)
	}
	if err := o.d.Migrate(ctx, db); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Enqueue writes msgs for topic into the outbox within tx. They are
// forwarded by a Relay once tx commits, and never when it rolls back.
//
// Like Publish, Enqueue sets ID (a version 7 UUID) when empty and Time when
// zero, so the caller knows each message's ID before commit; the relay
// publishes the ID, Key, Payload and Header verbatim, so a consumer's inbox
// deduplicates by the same ID. Time is kept to the microsecond (PostgreSQL's
// resolution), except the ID's time that Enqueue sets when it sets both,
// which the relay publishes whole; either way the relay gives it in the
// local time zone (compare times with Equal). Messages with the same
// non-empty Key are forwarded in the order of their rows: the order of
// Enqueue calls within a transaction, and commit order across transactions
// that enqueue the same key one after the other (see the package
// documentation for concurrent ones). The topic must be a valid name
// (messaging.ValidateName); an invalid topic or nil message is an error
// wrapping messaging.ErrInvalidTopic or messaging.ErrInvalidOption and
// nothing is written.
func (o *Outbox) Enqueue(ctx context.Context, tx *sql.Tx, topic string, msgs ...*messaging.Message) error {
	if tx == nil {
		return fmt.Errorf("outbox: enqueue: nil transaction: %w", messaging.ErrInvalidOption)
	}
	if err := driver.PreparePublish(topic, msgs, 0); err != nil {
		return fmt.Errorf("outbox: enqueue: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := o.d.Insert(ctx, tx, topic, msgs); err != nil {
		return fmt.Errorf("outbox: enqueue %d messages to %s: %w", len(msgs), topic, err)
	}
	return nil
}

// Status reads the outbox's backlog, the age of its oldest unforwarded
// message, its leases and its live relays. A nil db is an error wrapping
// messaging.ErrInvalidOption.
func (o *Outbox) Status(ctx context.Context, db *sql.DB) (Status, error) {
	if db == nil {
		return Status{}, fmt.Errorf("outbox: status: nil database: %w", messaging.ErrInvalidOption)
	}
	st, err := o.d.Status(ctx, db)
	if err != nil {
		return st, fmt.Errorf("outbox: status: %w", err)
	}
	return st, nil
}

// storedTime is the Time a dialect stores: t to the microsecond, the
// resolution of PostgreSQL's timestamps, cut here rather than left to the
// driver (which may round) so that relayedTime can recognise an ID's time.
func storedTime(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// relayedTime is the Time the relay publishes for a stored one: the ID's
// time, to the nanosecond, when id is a version 7 UUID whose time is stored
// (storedTime), as when Enqueue filled in Time; else the stored time. Both
// are in the local time zone, as driver.IDTime and the adapters give times.
func relayedTime(id string, stored time.Time) time.Time {
	if at, ok := driver.IDTime(id); ok && storedTime(at).Equal(stored) {
		return at
	}
	return stored.Local()
}

// ErrCorruptHeader is returned when a stored header cannot be decoded.
var ErrCorruptHeader = errors.New("outbox: corrupt header encoding")

// EncodeHeader encodes h for storage, byte for byte (any string, invalid
// UTF-8 and NUL included): for each entry in key order, the key's and the
// value's length as uvarints, each followed by its bytes. A nil or empty
// header encodes as nil. Dialects use it and DecodeHeader.
func EncodeHeader(h messaging.Header) []byte {
	if len(h) == 0 {
		return nil
	}
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(h)) {
		v := h[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// DecodeHeader decodes what EncodeHeader produced; empty input gives a nil
// header.
func DecodeHeader(b []byte) (messaging.Header, error) {
	if len(b) == 0 {
		return nil, nil
	}
	h := messaging.Header{}
	next := func() (string, error) {
		n, size := binary.Uvarint(b)
		if size <= 0 || n > uint64(len(b)-size) {
			return "", ErrCorruptHeader
		}
		s := string(b[size : size+int(n)])
		b = b[size+int(n):]
		return s, nil
	}
	for len(b) > 0 {
		k, err := next()
		if err != nil {
			return nil, err
		}
		v, err := next()
		if err != nil {
			return nil, err
		}
		h[k] = v
	}
	return h, nil
}
