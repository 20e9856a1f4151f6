package main_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

// TestOutboxStatus: msgctl outbox status reports the backlog of a real
// outbox (three committed messages, one rolled back), in text and JSON, and
// a missing --db is a usage error.
func TestOutboxStatus(t *testing.T) {
	msgctlEnv(t, []string{"DATABASE_URL="}, "", "outbox", "status").want(t, 2, "no database: pass --db")
	msgctl(t, "", "outbox", "status", "--db", "postgres://u@127.0.0.1:1/db", "--connect-timeout", "0s").want(t, 2, "--connect-timeout must be positive")

	db := brokertest.OpenPostgres(t)
	schema := brokertest.PostgresSchema(t, db)
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(schema)))
	if err := ob.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{true, false} {
		tx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 3
		if !commit {
			n = 1
		}
		for range n {
			if err := ob.Enqueue(t.Context(), tx, "orders", &messaging.Message{Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	dsn := brokertest.Postgres.Endpoint(t)
	msgctl(t, "", "outbox", "status", "--db", dsn, "--schema", schema).want(t, 0, "backlog", "PARTITION")
	r := msgctl(t, "", "outbox", "status", "--schema", schema, "--format", "json", "--db", dsn)
	r.want(t, 0)
	var got struct {
		Backlog          int64   `json:"backlog"`
		OldestAgeSeconds float64 `json:"oldest_age_seconds"`
		Relays           []any   `json:"relays"`
		Partitions       []struct {
			Backlog int64 `json:"backlog"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	var sum int64
	for _, p := range got.Partitions {
		sum += p.Backlog
	}
	if got.Backlog != 3 || sum != 3 || got.OldestAgeSeconds <= 0 || len(got.Relays) != 0 {
		t.Fatalf("status %+v; want backlog 3 over the partitions, a positive oldest age, no relays", got)
	}
}

// TestOutboxStatusConnectTimeout: --connect-timeout bounds outbox status
// against a database server that accepts connections and never answers.
func TestOutboxStatusConnectTimeout(t *testing.T) {
	ln := silentServer(t)
	start := time.Now()
	r := msgctl(t, "", "outbox", "status", "--db", "postgres://u@"+ln.Addr().String()+"/db", "--connect-timeout", "300ms")
	r.want(t, 1)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("outbox status against a silent server took %v", took)
	}
}
