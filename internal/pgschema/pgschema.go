// Package pgschema runs the outbox's and the inbox's PostgreSQL schema files.
package pgschema

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Migrate runs ddl, a plain SQL script that creates its objects in the
// current schema, with search_path set to schema (created when missing),
// in one transaction. Concurrent calls with the same name are serialised by
// a transaction-level advisory lock, so two processes starting at once do
// not race on CREATE ... IF NOT EXISTS.
func Migrate(ctx context.Context, db *sql.DB, schema, name, ddl string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("messaging: migrate %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	ident := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		"SELECT pg_advisory_xact_lock(hashtext('" + name + "'))",
		"CREATE SCHEMA IF NOT EXISTS " + ident,
		"SET LOCAL search_path TO " + ident,
		ddl,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("messaging: migrate %s in schema %s: %w", name, schema, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("messaging: migrate %s in schema %s: %w", name, schema, err)
	}
	return nil
}
