package inbox

import (
	"context"
	"database/sql"
	_ "embed"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgkit/messaging/internal/pgschema"
)

// PostgresSchema is the inbox's schema for PostgreSQL, as Migrate runs it;
// the same file (postgres.sql) can be run by hand.
//
//go:embed postgres.sql
var PostgresSchema string

// PostgreSQL returns the Dialect for PostgreSQL, with the inbox table
// (messaging_inbox, primary key (group_name, msg_id)) in the given schema
// ("" means "public"); Migrate creates the schema when missing. Any
// database/sql driver works; the project tests with pgx's stdlib driver.
func PostgreSQL(schema string) Dialect {
	if schema == "" {
		schema = "public"
	}
	return &postgres{schema: schema, table: pgx.Identifier{schema}.Sanitize() + ".messaging_inbox"}
}

type postgres struct{ schema, table string }

func (p *postgres) Migrate(ctx context.Context, db *sql.DB) error {
	return pgschema.Migrate(ctx, db, p.schema, "messaging_inbox", PostgresSchema)
}

func (p *postgres) Record(ctx context.Context, tx *sql.Tx, group, id, topic string) (bool, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO "+p.table+" (group_name, msg_id, topic) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", group, id, topic)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (p *postgres) Cleanup(ctx context.Context, db *sql.DB, olderThan time.Duration, limit int) (int64, error) {
	res, err := db.ExecContext(ctx, "DELETE FROM "+p.table+" WHERE ctid IN (SELECT ctid FROM "+p.table+
		" WHERE handled_at < now() - $1 * interval '1 second' LIMIT $2)", olderThan.Seconds(), limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
