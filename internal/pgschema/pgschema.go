// Package pgschema runs the outbox's and the inbox's PostgreSQL schema files.
package pgschema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Migrate runs ddl, a plain SQL script that creates its objects in the
// current schema, with search_path set to schema (created when missing),
// in one transaction. Concurrent calls are serialised by transaction-level
// advisory locks, so that processes starting at once do not race on
// CREATE ... IF NOT EXISTS: one per name (the component: two calls for the
// same name wait for each other), then one per schema, taken before CREATE
// SCHEMA (an outbox's and an inbox's Migrate on the same new schema wait
// for each other). A transaction outside these locks that creates the
// schema at the same moment (the application's own, or an older release's
// Migrate) makes CREATE SCHEMA fail with a unique violation once it
// commits; Migrate then runs again, once, and finds the schema.
func Migrate(ctx context.Context, db *sql.DB, schema, name, ddl string) error {
	err := migrate(ctx, db, schema, name, ddl)
	if errors.Is(err, errSchemaCreatedElsewhere) {
		err = migrate(ctx, db, schema, name, ddl)
	}
	return err
}

// errSchemaCreatedElsewhere marks CREATE SCHEMA IF NOT EXISTS failing with
// a unique violation: another transaction created the schema and committed.
var errSchemaCreatedElsewhere = errors.New("messaging: schema created by another transaction at the same time")

// uniqueViolation reports whether err is PostgreSQL's unique_violation
// (SQLSTATE 23505), read from the error's SQLState method (pgx's
// *pgconn.PgError has one).
func uniqueViolation(err error) bool {
	var e interface{ SQLState() string }
	return errors.As(err, &e) && e.SQLState() == "23505"
}

func migrate(ctx context.Context, db *sql.DB, schema, name, ddl string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("messaging: migrate %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	ident := pgx.Identifier{schema}.Sanitize()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"SELECT pg_advisory_xact_lock(hashtext($1))", []any{name}},
		// Two int4 keys: a key space apart from the one above.
		{"SELECT pg_advisory_xact_lock(hashtext('messaging schema'), hashtext($1))", []any{schema}},
		{"CREATE SCHEMA IF NOT EXISTS " + ident, nil},
		{"SET LOCAL search_path TO " + ident, nil},
		{ddl, nil},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			if q.sql == "CREATE SCHEMA IF NOT EXISTS "+ident && uniqueViolation(err) {
				err = fmt.Errorf("%w: %w", errSchemaCreatedElsewhere, err)
			}
			return fmt.Errorf("messaging: migrate %s in schema %s: %w", name, schema, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("messaging: migrate %s in schema %s: %w", name, schema, err)
	}
	return nil
}
