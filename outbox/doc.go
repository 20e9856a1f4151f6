// Package outbox is a transactional outbox: a service writes its messages
// into an outbox table in the same database transaction as its own data,
// and a relay forwards the committed ones to any messaging.Publisher. A
// crash can no longer lose an event whose transaction committed, nor
// publish one whose transaction rolled back. Its partner is package inbox,
// which applies each message's database effects exactly once on the
// consumer's side; together every effect of a message happens once, over
// any broker.
//
//	ob, err := outbox.New(outbox.PostgreSQL("app"))
//	err = ob.Migrate(ctx, db) // or: psql -c 'SET search_path TO app' -f postgres.sql
//
//	tx, _ := db.BeginTx(ctx, nil)
//	_, _ = tx.ExecContext(ctx, "INSERT INTO orders ...")
//	err = ob.Enqueue(ctx, tx, "orders.placed", &messaging.Message{Key: customerID, Payload: event})
//	err = tx.Commit()
//
//	relay, err := ob.NewRelay(db, client) // any messaging.Publisher
//	go relay.Run(ctx)
//
// db is a database/sql handle; with PostgreSQL use pgx's stdlib driver
// (github.com/jackc/pgx/v5/stdlib), which the relay also uses for
// LISTEN/NOTIFY. examples/orders is a complete program.
//
// # Messages
//
// Enqueue assigns a message ID (a version 7 UUID) and time when they are
// empty, as Publish does, and stores ID, Key, Payload, Header and Time; the
// relay publishes them verbatim, except Time: a Time Enqueue assigned (the
// ID's time, to 256 ns) comes back whole, and any other Time to the
// microsecond, PostgreSQL's resolution; the relay gives it in the local time
// zone (compare times with Equal). So the ID a consumer's inbox deduplicates
// by is the one the service saw at Enqueue, however often the relay sends
// the message (and JetStream, whose streams drop a repeated Nats-Msg-Id
// within their duplicate window, drops a relay's resends itself). Headers
// are stored byte for byte (EncodeHeader), keys as bytea.
//
// # Delivery and ordering
//
// At-least-once: a row is deleted (or marked, see WithKeepForwarded) only after the
// broker accepted its message. A relay that crashes between the two makes
// its successor send those messages again, with the same IDs.
//
// Per-key order. Row locking with SKIP LOCKED, the usual recipe, lets two
// relays take two batches of one key and publish them in either order. So
// the outbox is split into 16 partitions (a stored column: a hash of the
// key, or of the ID for messages without a key), and each partition has a
// lease row: only its holder forwards the partition's rows, in seq order,
// and a batch's messages of one topic go in one Publish call (which keeps a
// key's order). Relays share the partitions evenly: each registers a
// heartbeat, takes free or expired leases up to ceil(16 / live relays), and
// releases what is above its share, all in one transaction every TTL/3
// (WithLeaseTTL, default 30s). So any number of relays can run, in any number
// of processes; up to 16 work at once.
//
// Handover. Run releases its leases when it returns; the others take them
// at their next renewal. A relay that dies (SIGKILL, lost host) stops
// renewing, and its leases expire after the TTL; the next holder starts at
// the partition's first unforwarded row. A relay that only stalls (GC,
// network) must not publish after its lease expired: it publishes only
// while its lease has more than TTL/5 left (measured from before the
// renewing query, so clock skew between hosts does not matter) and gives
// Publish a context that ends then; and it marks rows only of partitions it
// still owns (a fence in the UPDATE/DELETE), so a takeover shows up as
// resends, never as a lost message. The remaining window is a Publisher
// that ignores its context after writing to the socket.
//
// What "order" means, precisely: a key's messages are forwarded in seq
// order, which is the order of Enqueue calls in one transaction and the
// commit order of transactions that enqueue the key one after the other.
// Two transactions that enqueue the same key concurrently are not ordered
// against each other (neither are their commits, unless they lock a common
// row, such as the aggregate the key names; do that when it matters). A
// resend after a failure repeats the rest of the key in order: if a broker
// accepts message 3 of a key after rejecting message 2 in the same Publish
// call, the relay sends 2 and 3 again, so the consumer sees 1, 3, 2, 3: the
// last copy of each message is in order, and first copies can be out of
// order only in this case (a partially failed Publish).
//
// A message the broker refuses every time (larger than its limit, say) is
// never dropped and does not stop the relay: its partition is retried with
// backoff while the other partitions go on, and a Publish call refused
// whole because of it is made again message by message, so only its key
// waits behind it (and the rest of its partition, once the key's waiting
// rows fill a batch). Delete its row to unblock the key; the relay logs
// the failure at Warn with each retry.
//
// Wake-up: a statement trigger NOTIFYs channel "outbox.<schema>" when an
// enqueuing transaction commits; relays LISTEN on a dedicated connection and
// poll every WithPollInterval (default 1s) as the fallback, and after a full
// batch they go on without waiting. Polling replaces NOTIFY with WithPolling(),
// or automatically when the driver is not pgx or the LISTEN connection
// fails (it is re-established with backoff).
//
// Retention: by default forwarded rows are deleted in the marking
// statement. With WithKeepForwarded(d) they are kept with their forwarded time and
// each relay deletes the expired ones every WithCleanupInterval (in chunks of
// 1000, and in 100ms slices between batches when many have expired). Only
// relays with WithKeepForwarded delete kept rows: after turning retention
// off, the rows kept until then stay (Status counts them in Retained) until
// deleted by hand (DELETE FROM messaging_outbox WHERE forwarded_at IS NOT
// NULL). The marking statement commits without waiting for the WAL flush
// (synchronous_commit off for that statement only): a mark lost in a
// database crash means a resend, which at-least-once allows.
//
// # Operating it
//
// Status (for `msgctl outbox status`) reads the backlog, the age of the
// oldest unforwarded message, the rows kept for retention, each partition's
// owner, lease expiry and backlog, and the live relays with their heartbeat
// age and lease count. Metrics per batch come from WithOnBatch (messages
// fetched, forwarded, failed, left unmarked; each message's time from
// insert to broker acceptance; the Publish time), counters from
// Relay.Stats. The relay logs with log/slog (WithLogger): lease changes at
// Info, failures at Warn; never message contents.
//
// Schema (PostgreSQL 14+): postgres.sql, embedded as PostgresSchema and run
// by Migrate in the dialect's schema (search_path), inside a transaction
// serialised by an advisory lock; idempotent. Operators can run the file
// themselves. Tables messaging_outbox, messaging_outbox_leases,
// messaging_outbox_relays; trigger messaging_outbox_notify.
//
// Other databases: everything database-specific is behind Dialect (insert,
// lease, fetch, mark, cleanup, status, listen); postgres.go and
// postgres.sql are the PostgreSQL implementation and the model for others
// (MySQL 8 has SKIP LOCKED and no NOTIFY: its Listen returns
// messaging.ErrUnsupported and relays poll).
//
// Why top-level packages (outbox, inbox) and not under patterns/: patterns
// are helpers built only on the messaging interfaces; these two bring a
// database, a schema and a driver dependency (pgx), and each side is used
// alone (a producer may run only the outbox, a consumer only the inbox).
//
// # Tests
//
// In tests/outbox (module github.com/msgkit/messaging/tests: cd tests &&
// go test ./outbox/), against PostgreSQL (MESSAGING_POSTGRES_URL, else a
// postgres:15 container) and Redis and NATS JetStream, counting by message ID
// (integration.Collector): every committed transaction's messages are
// delivered and none of the rolled-back ones (4 writers, 240 transactions,
// a third rolled back); per-key order holds while a second relay joins
// midway and the first stops later (32 keys, ~760 messages; with the
// leases replaced by SKIP LOCKED row claiming, the usual recipe, this test
// failed with 26 out-of-order first deliveries on Redis); a relay
// process killed with SIGKILL after the broker accepted half a batch loses
// nothing: its successor takes over after the 1s lease TTL and the half
// batch arrives twice on Redis (25 duplicates reported) and once on
// JetStream (dropped there by ID). Also: NOTIFY wakes a relay that polls
// hourly, polling only, retention and cleanup, a partially failed Publish,
// Status, the SQL file run by hand. The inbox's counting test is in
// tests/inbox.
//
// # Performance
//
// tests/outbox/bench_test.go: cd tests && go test -run '^$' -bench . ./outbox/ (PostgreSQL 15 and
// the brokers on loopback, 1 KiB payloads, 100 keys, 2-core machine). The
// machine was shared with other builds and tests (load average 6 to 10)
// while these were taken: single runs varied by 2x, so read them as orders
// of magnitude and ratios, not promises.
//
// Relay throughput, 10,000 committed rows forwarded by one relay until the
// broker accepted all, against publishing the same messages directly in
// calls of the same size (BenchmarkRelayThroughput, BenchmarkDirectPublish):
//
//	                 relay msgs/s      direct msgs/s     ratio
//	Redis, batch 100  7.8k-18.9k        22.9k-65.3k       0.23-0.35
//	Redis, batch 500  10.2k-29.6k       29.5k-87.1k       0.30-0.34
//	NATS,  batch 100  8.2k-13.2k        12.2k-31.7k       0.42-0.70
//	NATS,  batch 500  8.1k-17.5k        13.2k-35.9k       0.49-0.80
//
// A batch costs three round trips: the fetch (about half the time), the
// publish, and the marking DELETE (without a WAL flush). One relay works
// its partitions one batch at a time; up to 16 relays work in parallel.
//
// Commit-to-delivery latency, one message per transaction committed at a
// random moment, from Commit's return to the consumer's handler (200
// commits; BenchmarkCommitToDelivery):
//
//	                         p50       p99
//	NOTIFY, Redis            1.2 ms    27-39 ms
//	NOTIFY, NATS             1.0 ms    16-19 ms
//	polling 100 ms, Redis    51 ms     109 ms
//	polling 100 ms, NATS     49 ms     103 ms
//
// Enqueue, one message per transaction: 140-230 transactions/s against
// 200-234 for the same transactions inserting into a plain table
// (BenchmarkEnqueue, BenchmarkPlainInsert; about 0.7: the commit's disk
// flush dominates both, the outbox adds an index, the generated partition
// column and the NOTIFY at commit).
package outbox
