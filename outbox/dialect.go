package outbox

import (
	"context"
	"database/sql"
	"time"

	"github.com/msgkit/messaging"
)

// Dialect is the seam between the outbox and one SQL database: it owns the
// schema and every statement. PostgreSQL is the implementation shipped
// (PostgreSQL, in postgres.go); another database adds its own Dialect
// without touching the writer or the relay.
//
// A Dialect must provide, and the relay relies on:
//   - Insert: rows become visible to Fetch only when tx commits, and are
//     never visible when it rolls back.
//   - Seq: within one key's partition, a message enqueued by a transaction
//     that started after another one's commit gets a higher Seq.
//   - Lease: at most one relay holds a partition's lease at a time; a lease
//     that is not renewed expires after the TTL measured from the call's
//     start; held partitions are shared out fairly among live relays.
//   - MarkForwarded: only rows of partitions the relay still owns are marked
//     (a fence against a relay that lost its lease).
//
// Methods must be safe for concurrent use.
type Dialect interface {
	// Migrate creates or upgrades the schema; idempotent.
	Migrate(ctx context.Context, db *sql.DB) error
	// Insert adds rows to the outbox within tx.
	Insert(ctx context.Context, tx *sql.Tx, topic string, msgs []*messaging.Message) error
	// Lease records relay as alive until now+ttl, renews the leases it holds,
	// releases those beyond its fair share, claims free or expired ones up to
	// its share, and returns the partitions it holds.
	Lease(ctx context.Context, db *sql.DB, relay string, ttl time.Duration) ([]int, error)
	// Release gives up every lease of relay and removes its heartbeat.
	Release(ctx context.Context, db *sql.DB, relay string) error
	// Fetch returns up to limit unforwarded rows of the given partitions in
	// Seq order; a row it cannot decode is returned with Record.Err set.
	Fetch(ctx context.Context, db *sql.DB, parts []int, limit int) ([]Record, error)
	// MarkForwarded deletes the rows (keep false) or sets their forwarded time
	// (keep true), but only rows of partitions relay owns; it returns how
	// many it marked.
	MarkForwarded(ctx context.Context, db *sql.DB, relay string, seqs []int64, keep bool) (int64, error)
	// Cleanup deletes up to limit rows forwarded more than olderThan ago.
	Cleanup(ctx context.Context, db *sql.DB, olderThan time.Duration, limit int) (int64, error)
	// Status reads the outbox's state.
	Status(ctx context.Context, db *sql.DB) (Status, error)
	// Listen calls wake each time a transaction that enqueued commits,
	// until ctx is done or the connection fails (then it returns the error).
	// It returns an error wrapping messaging.ErrUnsupported when the
	// database or driver cannot notify; the relay then polls only.
	Listen(ctx context.Context, db *sql.DB, ready, wake func()) error
}

// Record is one outbox row as Fetch returns it.
type Record struct {
	// Seq is the row's position in the outbox.
	Seq int64
	// Partition is the key's partition.
	Partition int
	// Topic is the topic to publish to.
	Topic string
	// Message holds ID, Key, Payload, Header and Time as enqueued, except
	// that Time may be kept only to the database's resolution (PostgreSQL:
	// the microsecond) and is in the local time zone; a Time equal to a
	// version 7 ID's time to that resolution is the ID's time (as Enqueue
	// sets it by default), so that one comes back whole. With Err set it
	// should still hold the row's Key: the relay holds back the later rows
	// of that key. A nil Message holds back the later rows of its
	// Partition.
	Message *messaging.Message
	// Age is how long ago the row was inserted, measured by the database
	// when it was fetched.
	Age time.Duration
	// Err is set when the row cannot be read into a message (a stored
	// header that does not decode: ErrCorruptHeader). The relay does not
	// publish such a row: it holds back the later rows of its key and
	// retries its partition like one the broker refused, while the other
	// rows go on. Fetch returns the row rather than failing, so one bad
	// row does not stop the relay.
	Err error
}

// Status is the state of an outbox, as Outbox.Status reads it (and
// `msgctl outbox status` prints it).
type Status struct {
	// Backlog is the number of messages not yet forwarded.
	Backlog int64
	// OldestAge is how long the oldest unforwarded message has waited; zero
	// when the backlog is empty.
	OldestAge time.Duration
	// Retained is the number of forwarded rows kept for the retention period.
	Retained int64
	// Partitions holds each partition's lease and backlog, by partition.
	Partitions []PartitionStatus
	// Relays holds the relays whose heartbeat has not expired.
	Relays []RelayStatus
}

// PartitionStatus is one partition's lease and backlog.
type PartitionStatus struct {
	Partition int
	// Owner is the relay holding the lease; empty when free.
	Owner string
	// ExpiresIn is the time left on the lease; negative when it expired
	// (its owner stopped renewing: it is free to take), zero when released.
	ExpiresIn time.Duration
	// Backlog is the number of unforwarded messages in the partition.
	Backlog int64
}

// RelayStatus is one live relay.
type RelayStatus struct {
	ID string
	// Started is when the relay first registered.
	Started time.Time
	// LastHeartbeat is how long ago it last renewed its leases.
	LastHeartbeat time.Duration
	// Partitions is the number of leases it holds.
	Partitions int
}
