package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/inbox"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

// dropSchemaAtEnd drops schema (with everything in it) when the test ends.
func dropSchemaAtEnd(t testing.TB, db *sql.DB, schema string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %q: %v", schema, err)
		}
	})
}

// randomSuffix is 12 random hexadecimal digits.
func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TestLongSchemaNames: the notification channel "outbox.<schema>" is longer
// than PostgreSQL's 63-byte limit; the trigger and the relay cut it the
// same way, to a name PostgreSQL accepts. With a schema name of 2-byte
// characters, cutting 63 characters rather than 63 bytes made every
// Enqueue fail ("channel name too long"). The relay polls hourly, so only
// the notification can deliver the later messages.
func TestLongSchemaNames(t *testing.T) {
	for name, schema := range map[string]string{
		// 59 bytes, 37 characters: the channel has 66 bytes, 44
		// characters, and its 63rd byte is inside a character.
		"2-byte characters": "t_" + randomSuffix() + "_" + strings.Repeat("é", 22),
		// 63 bytes, the longest identifier.
		"ASCII": "t_" + randomSuffix() + strings.Repeat("s", 49),
		// 62 bytes: the channel's 63rd byte is inside a 4-byte character.
		"4-byte characters": "t_" + randomSuffix() + strings.Repeat("😀", 12),
	} {
		t.Run(name, func(t *testing.T) {
			if n := len(schema); n > 63 {
				t.Fatalf("schema name of %d bytes: PostgreSQL would cut it", n)
			}
			db := brokertest.OpenPostgres(t)
			dropSchemaAtEnd(t, db, schema)
			ob := mwtest.Must(outbox.New(outbox.PostgreSQL(schema)))
			if err := ob.Migrate(context.Background(), db); err != nil {
				t.Fatal(err)
			}
			e := &env{db: db, ob: ob, schema: schema}
			c := openMemory(t)
			topic := integration.UniqueName(t, "long")
			col := integration.NewCollector()
			subscribe(t, c, topic, col.Handler())
			ids := e.enqueue(t, topic, true, &messaging.Message{})
			var first sync.Once
			batched := make(chan struct{})
			e.startRelay(t, c, outbox.WithPollInterval(time.Hour), outbox.WithOnBatch(func(outbox.BatchInfo) { first.Do(func() { close(batched) }) }))
			col.WaitDistinct(t, 1, 10*time.Second)
			<-batched // the relay is idle from now on, until notified
			for i := range 3 {
				ids = append(ids, e.enqueue(t, topic, true, &messaging.Message{})...)
				col.WaitDistinct(t, 2+i, 10*time.Second)
			}
			col.Report(t, ids)
		})
	}
}

// TestMigrateWithInboxOnNewSchema: an outbox's and an inbox's Migrate run
// at the same moment on a schema that does not exist yet, as two services
// sharing a schema start together. Both must succeed: they used to race
// on CREATE SCHEMA IF NOT EXISTS, one failing with a unique violation on
// pg_namespace (SQLSTATE 23505).
func TestMigrateWithInboxOnNewSchema(t *testing.T) {
	db := brokertest.OpenPostgres(t)
	db.SetMaxIdleConns(4)
	ctx := context.Background()
	// Connections opened beforehand, so that both calls start together.
	for range 2 {
		if err := db.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 50
	for round := range rounds {
		schema := brokertest.PostgresSchema(t, db)
		ob := mwtest.Must(outbox.New(outbox.PostgreSQL(schema)))
		in, err := inbox.New(db, inbox.PostgreSQL(schema))
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var obErr, inErr error
		var wg sync.WaitGroup
		wg.Go(func() { <-start; obErr = ob.Migrate(ctx, db) })
		wg.Go(func() { <-start; inErr = in.Migrate(ctx) })
		close(start)
		wg.Wait()
		if obErr != nil || inErr != nil {
			t.Fatalf("round %d of %d: outbox Migrate: %v; inbox Migrate: %v", round+1, rounds, obErr, inErr)
		}
	}
}

// TestMigrateWhileSchemaCreatedElsewhere: the schema is being created by
// another transaction (the application's own CREATE SCHEMA, or an older
// release's Migrate, which takes none of Migrate's locks) when Migrate
// runs. Migrate waits for it and, once it commits, uses the schema instead
// of failing with its unique violation.
func TestMigrateWhileSchemaCreatedElsewhere(t *testing.T) {
	db := brokertest.OpenPostgres(t)
	schema := brokertest.PostgresSchema(t, db)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(schema)))
	done := make(chan error, 1)
	go func() { done <- ob.Migrate(ctx, db) }()
	// Nothing signals that Migrate waits for tx; the server's view is the
	// signal: its CREATE SCHEMA waits for tx's lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE SCHEMA IF NOT EXISTS %' AND query LIKE '%' || $1 || '%')`, schema).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Migrate returned (%v) before the schema's creation committed", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Migrate never waited for the schema's creation")
		}
		time.Sleep(10 * time.Millisecond) // polling the server's state
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Migrate did not return within 30s of the schema's creation")
	}
	e := &env{db: db, ob: ob, schema: schema}
	e.enqueue(t, "orders", true, &messaging.Message{})
}
