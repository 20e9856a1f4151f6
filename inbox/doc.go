// Package inbox makes a consumer's database effects exactly-once: handler
// middleware that runs the handler in a database transaction together with
// a record of (consumer group, message ID), so a redelivered or republished
// duplicate commits nothing a second time.
//
//	in, err := inbox.New(db, inbox.PostgreSQL("app"))
//	if err != nil { ... }
//	if err := in.Migrate(ctx); err != nil { ... } // or run postgres.sql by hand
//	sub, err := client.Subscribe(ctx, "orders", in.Handler(
//		func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
//			_, err := tx.ExecContext(ctx, "UPDATE totals SET n = n + 1 WHERE customer = $1", m.Key)
//			return err
//		}), messaging.Group("billing"))
//
// Per delivery: BEGIN; INSERT the (group, ID) record, ON CONFLICT DO
// NOTHING; if it existed, roll back and acknowledge (a duplicate); else run
// the handler with the transaction and COMMIT. A handler error or panic, or
// a failed commit, rolls everything back and returns the error, so the
// broker redelivers and the message is handled again from scratch. Two
// deliveries of one message at the same time are serialised by the primary
// key: the second waits for the first's transaction, then sees the record.
// Handlers written as messaging.Handler use Middleware and read the
// transaction with Tx(ctx).
//
// What is exactly-once: the writes the handler makes through the
// transaction. Anything else it does (calls, publishes) happens once per
// attempt. Deduplication is by message ID, so publishers must keep IDs
// stable across retries: the outbox package does (it stores the ID with the
// message), and so does every adapter's Publish for a message it is given
// again. Records are per group: each group applies a message once.
//
// Retention: records older than WithTTL (default 7 days) are deleted by
// Cleanup / RunCleanup. A duplicate that arrives after its record was
// deleted is applied again, so keep records longer than the broker may
// redeliver (ack deadlines, dead-letter replays) and publishers may retry.
//
// Dialect: the SQL lives behind Dialect; PostgreSQL (postgres.go and
// postgres.sql, table messaging_inbox with primary key (group_name, msg_id))
// is the implementation shipped. Another database provides Migrate, Record
// (an insert that reports whether the row is new and waits on a concurrent
// uncommitted one) and Cleanup. The handler's transaction uses the
// database's default isolation (READ COMMITTED on PostgreSQL) unless
// WithTxOptions says otherwise; under REPEATABLE READ or SERIALIZABLE a
// concurrent duplicate fails with a serialization error and is redelivered,
// which is still correct.
//
// Tests (tests/inbox/inbox_test.go, in module
// github.com/msgkit/messaging/tests, against PostgreSQL, Redis and
// RabbitMQ): every
// message published 4 times with one ID and a third of the first attempts
// failing after their write ends with exactly one effect row per message;
// eight concurrent deliveries of one message run the handler once.
package inbox
