package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/pgschema"
)

// PostgresSchema is the outbox's schema for PostgreSQL 14 and later, as
// Migrate runs it; the same file (postgres.sql) can be run by hand.
//
//go:embed postgres.sql
var PostgresSchema string

// PostgreSQL returns the Dialect for PostgreSQL 14 and later, with the
// outbox's tables in the given schema ("" means "public"); Migrate creates
// the schema when it is missing. It needs the pgx stdlib driver
// (github.com/jackc/pgx/v5/stdlib, driver name "pgx") for LISTEN/NOTIFY;
// with another driver the relay polls only.
//
// Objects: tables messaging_outbox, messaging_outbox_leases (one row per
// partition), messaging_outbox_relays (heartbeats), the trigger function and
// statement trigger messaging_outbox_notify, which notifies channel
// "outbox.<schema>" when an enqueuing transaction commits. A channel name is
// an identifier, at most 63 bytes: a longer one is cut to its first 63 bytes
// (in the database's encoding) on a character boundary, by the trigger and,
// for the relay's LISTEN, by PostgreSQL itself.
func PostgreSQL(schema string) Dialect {
	if schema == "" {
		schema = "public"
	}
	s := pgx.Identifier{schema}.Sanitize()
	// The channel is not cut here: PostgreSQL cuts an identifier longer
	// than 63 bytes as the trigger cuts the channel (postgres.sql), in the
	// database's encoding, with a NOTICE.
	channel := pgx.Identifier{"outbox." + schema}.Sanitize()
	return &postgres{
		schema:  schema,
		ident:   s,
		outbox:  s + ".messaging_outbox",
		leases:  s + ".messaging_outbox_leases",
		relays:  s + ".messaging_outbox_relays",
		channel: channel,
	}
}

type postgres struct {
	schema, ident, outbox, leases, relays, channel string
}

// Migrate runs PostgresSchema in the dialect's schema, in one transaction,
// serialised with other Migrate calls by an advisory lock.
func (p *postgres) Migrate(ctx context.Context, db *sql.DB) error {
	return pgschema.Migrate(ctx, db, p.schema, "messaging_outbox", PostgresSchema)
}

// insertChunk bounds the rows of one INSERT (6 parameters each, well under
// PostgreSQL's 65535).
const insertChunk = 1000

func (p *postgres) Insert(ctx context.Context, tx *sql.Tx, topic string, msgs []*messaging.Message) error {
	for start := 0; start < len(msgs); start += insertChunk {
		chunk := msgs[start:min(start+insertChunk, len(msgs))]
		var q strings.Builder
		q.WriteString("INSERT INTO " + p.outbox + " (msg_id, topic, msg_key, payload, headers, msg_time) VALUES ")
		args := make([]any, 0, 6*len(chunk))
		for i, m := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6)
			payload := m.Payload
			if payload == nil {
				payload = []byte{}
			}
			args = append(args, m.ID, topic, []byte(m.Key), payload, EncodeHeader(m.Header), storedTime(m.Time))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func fromSeconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (p *postgres) Lease(ctx context.Context, db *sql.DB, relay string, ttl time.Duration) (parts []int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	ttlArg := seconds(ttl)
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+p.relays+` (relay_id, expires_at) VALUES ($1, now() + $2 * interval '1 second')
		ON CONFLICT (relay_id) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at`, relay, ttlArg); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+p.relays+" WHERE relay_id IN (SELECT relay_id FROM "+p.relays+
		" WHERE expires_at < now() FOR UPDATE SKIP LOCKED)"); err != nil {
		return nil, err
	}
	var relays, total int
	if err := tx.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM "+p.relays+"), (SELECT count(*) FROM "+p.leases+")").Scan(&relays, &total); err != nil {
		return nil, err
	}
	share := (total + relays - 1) / max(relays, 1)
	held, err := queryInts(ctx, tx, "UPDATE "+p.leases+" SET expires_at = now() + $2 * interval '1 second' WHERE owner = $1 RETURNING part", relay, ttlArg)
	if err != nil {
		return nil, err
	}
	slices.Sort(held)
	switch {
	case len(held) > share:
		extra := held[share:]
		held = held[:share]
		if _, err := tx.ExecContext(ctx, "UPDATE "+p.leases+" SET owner = NULL, expires_at = '-infinity' WHERE owner = $1 AND part = ANY($2::int4[])", relay, int32s(extra)); err != nil {
			return nil, err
		}
	case len(held) < share:
		got, err := queryInts(ctx, tx, "UPDATE "+p.leases+" SET owner = $1, expires_at = now() + $2 * interval '1 second' WHERE part IN (SELECT part FROM "+p.leases+
			" WHERE owner IS NULL OR expires_at < now() ORDER BY part LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING part", relay, ttlArg, share-len(held))
		if err != nil {
			return nil, err
		}
		held = append(held, got...)
		slices.Sort(held)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return held, nil
}

func queryInts(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]int, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func int32s(v []int) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

func (p *postgres) Release(ctx context.Context, db *sql.DB, relay string) error {
	if _, err := db.ExecContext(ctx, "UPDATE "+p.leases+" SET owner = NULL, expires_at = '-infinity' WHERE owner = $1", relay); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, "DELETE FROM "+p.relays+" WHERE relay_id = $1", relay)
	return err
}

func (p *postgres) Fetch(ctx context.Context, db *sql.DB, parts []int, limit int) ([]Record, error) {
	rows, err := db.QueryContext(ctx, `SELECT seq, part, topic, msg_id, msg_key, payload, headers, msg_time,
		extract(epoch FROM clock_timestamp() - enqueued_at)::float8
		FROM `+p.outbox+` WHERE forwarded_at IS NULL AND part = ANY($1::int4[]) ORDER BY seq LIMIT $2`, int32s(parts), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var (
			r      Record
			m      messaging.Message
			key    []byte
			header []byte
			age    float64
		)
		if err := rows.Scan(&r.Seq, &r.Partition, &r.Topic, &m.ID, &key, &m.Payload, &header, &m.Time, &age); err != nil {
			return nil, err
		}
		m.Key, m.Time = string(key), relayedTime(m.ID, m.Time)
		if m.Header, err = DecodeHeader(header); err != nil {
			r.Err = fmt.Errorf("outbox: row %d (message %s): %w", r.Seq, m.ID, err)
		}
		r.Message, r.Age = &m, fromSeconds(age)
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkForwarded commits without waiting for the WAL flush: it sets
// synchronous_commit off for its own (single-statement) transaction, in the
// statement itself to save round trips. A mark lost in a database crash only
// means those messages are forwarded again, which at-least-once allows; the
// relay saves a disk flush per batch.
func (p *postgres) MarkForwarded(ctx context.Context, db *sql.DB, relay string, seqs []int64, keep bool) (int64, error) {
	const async = "(SELECT set_config('synchronous_commit', 'off', true)) AS async"
	q := "DELETE FROM " + p.outbox + " o USING " + p.leases + " l, " + async + " WHERE o.seq = ANY($1::int8[]) AND l.part = o.part AND l.owner = $2"
	if keep {
		q = "UPDATE " + p.outbox + " o SET forwarded_at = now() FROM " + p.leases + " l, " + async + " WHERE o.seq = ANY($1::int8[]) AND l.part = o.part AND l.owner = $2"
	}
	res, err := db.ExecContext(ctx, q, seqs, relay)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (p *postgres) Cleanup(ctx context.Context, db *sql.DB, olderThan time.Duration, limit int) (int64, error) {
	res, err := db.ExecContext(ctx, "DELETE FROM "+p.outbox+" WHERE seq IN (SELECT seq FROM "+p.outbox+
		" WHERE forwarded_at < now() - $1 * interval '1 second' ORDER BY forwarded_at LIMIT $2)", seconds(olderThan), limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (p *postgres) Status(ctx context.Context, db *sql.DB) (Status, error) {
	var st Status
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return st, err
	}
	defer func() { _ = tx.Rollback() }()
	var oldest sql.NullFloat64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE forwarded_at IS NULL), count(*) FILTER (WHERE forwarded_at IS NOT NULL),
		extract(epoch FROM clock_timestamp() - min(enqueued_at) FILTER (WHERE forwarded_at IS NULL))::float8 FROM `+p.outbox).Scan(&st.Backlog, &st.Retained, &oldest); err != nil {
		return st, err
	}
	st.OldestAge = fromSeconds(oldest.Float64)
	rows, err := tx.QueryContext(ctx, `SELECT l.part, coalesce(l.owner, ''),
		CASE WHEN isfinite(l.expires_at) THEN extract(epoch FROM l.expires_at - now())::float8 END,
		(SELECT count(*) FROM `+p.outbox+` o WHERE o.part = l.part AND o.forwarded_at IS NULL)
		FROM `+p.leases+` l ORDER BY l.part`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var ps PartitionStatus
		var exp sql.NullFloat64
		if err := rows.Scan(&ps.Partition, &ps.Owner, &exp, &ps.Backlog); err != nil {
			rows.Close()
			return st, err
		}
		ps.ExpiresIn = fromSeconds(exp.Float64) // 0 for a released lease
		st.Partitions = append(st.Partitions, ps)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT r.relay_id, r.started_at, extract(epoch FROM now() - r.heartbeat_at)::float8,
		(SELECT count(*) FROM `+p.leases+` l WHERE l.owner = r.relay_id AND l.expires_at > now())
		FROM `+p.relays+` r WHERE r.expires_at >= now() ORDER BY r.relay_id`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var rs RelayStatus
		var hb float64
		if err := rows.Scan(&rs.ID, &rs.Started, &hb, &rs.Partitions); err != nil {
			return st, err
		}
		rs.LastHeartbeat = fromSeconds(hb)
		st.Relays = append(st.Relays, rs)
	}
	return st, rows.Err()
}

// Listen holds one connection of db in LISTEN until ctx is done; the
// connection is discarded afterwards rather than returned to the pool.
func (p *postgres) Listen(ctx context.Context, db *sql.DB, ready, wake func()) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("outbox: LISTEN needs the pgx stdlib driver, not %T: %w", dc, messaging.ErrUnsupported)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+p.channel); err != nil {
			return fmt.Errorf("%w (%w)", err, driver.ErrBadConn)
		}
		ready()
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// The connection still listens (or is broken): have
				// database/sql discard it rather than pool it.
				return errors.Join(err, driver.ErrBadConn)
			}
			wake()
		}
	})
}
