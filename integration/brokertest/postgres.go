package brokertest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/msgkit/messaging/integration"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Postgres is the PostgreSQL server the outbox and inbox tests use:
// MESSAGING_POSTGRES_URL (a postgres:// URL, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable), else a
// postgres:15 container with trust authentication. There is no in-process
// PostgreSQL.
var Postgres = &Broker{
	Name:   "PostgreSQL",
	EnvVar: "MESSAGING_POSTGRES_URL",
	Image:  "postgres:15",
	Port:   "5432/tcp",
	Env:    map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"},
	// The image's entrypoint starts the server twice (init, then for real).
	Wait: wait.ForLog("database system is ready to accept connections").WithOccurrence(2).WithStartupTimeout(2 * time.Minute),
	FromHostPort: func(hp string) string {
		return "postgres://postgres@" + hp + "/postgres?sslmode=disable"
	},
}

// OpenPostgres returns a database/sql handle on the test PostgreSQL (pgx
// stdlib driver), closed when the test ends.
func OpenPostgres(t testing.TB) *sql.DB {
	t.Helper()
	url := Postgres.Endpoint(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatalf("%s: %v", Postgres.EnvVar, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		t.Fatalf("PostgreSQL at %s: %v", Postgres.Source(), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresSchema returns a schema name no other test uses (lower case, so
// it needs no quoting in ad-hoc SQL), and drops the schema with everything
// in it when the test ends. It does not create the schema.
func PostgresSchema(t testing.TB, db *sql.DB) string {
	t.Helper()
	name := strings.ToLower(strings.ReplaceAll(integration.UniqueName(t, "t"), "-", "_"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}
