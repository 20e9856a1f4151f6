package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

// env is one test's outbox in a schema of its own (dropped at the end).
type env struct {
	db     *sql.DB
	ob     *outbox.Outbox
	schema string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db := brokertest.OpenPostgres(t)
	schema := brokertest.PostgresSchema(t, db)
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(schema)))
	if err := ob.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return &env{db: db, ob: ob, schema: schema}
}

// enqueue enqueues msgs for topic in one transaction and commits it (or
// rolls it back); it returns the messages' IDs.
func (e *env) enqueue(t testing.TB, topic string, commit bool, msgs ...*messaging.Message) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ob.Enqueue(ctx, tx, topic, msgs...); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// startRelay runs a relay until the returned stop function is called (or the
// test ends); stop waits for Run to return.
func (e *env) startRelay(t testing.TB, pub messaging.Publisher, opts ...outbox.RelayOption) (*outbox.Relay, func()) {
	t.Helper()
	opts = append([]outbox.RelayOption{outbox.WithLogger(testLogger(t))}, opts...)
	r, err := e.ob.NewRelay(e.db, pub, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay %s: %v", r.ID(), err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// backend is a real broker the counting tests run against.
type backend struct {
	name string
	open func(t testing.TB) messaging.Client
	// dedupesByID: the broker drops a message whose ID it stored recently
	// (JetStream's Nats-Msg-Id window), so a relay's resends never reach
	// consumers.
	dedupesByID bool
}

var realBrokers = []backend{
	{"Redis", func(t testing.TB) messaging.Client { return redistest.Open(t) }, false},
	{"NATS", func(t testing.TB) messaging.Client { return natstest.Open(t) }, true},
}

// forEachBroker runs f against each real broker with a fresh topic that is
// deleted afterwards.
func forEachBroker(t *testing.T, f func(t *testing.T, b backend, topic string)) {
	for _, b := range realBrokers {
		t.Run(b.name, func(t *testing.T) {
			c := b.open(t)
			topic := integration.UniqueName(t, "outbox")
			t.Cleanup(func() { deleteTopic(t, c, topic) })
			f(t, b, topic)
		})
	}
}

func deleteTopic(t testing.TB, c messaging.Client, topic string) {
	if d, ok := c.(messaging.TopicDeleter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.DeleteTopic(ctx, topic); err != nil && !errors.Is(err, messaging.ErrClosed) {
			t.Logf("delete topic %s: %v", topic, err)
		}
	}
}

// subscribe subscribes a collector to topic in a new group.
func subscribe(t testing.TB, c messaging.Consumer, topic string, h messaging.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := c.Subscribe(ctx, topic, h, messaging.Group(integration.UniqueName(t, "g")))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = sub.Close() })
}

func openMemory(t testing.TB) messaging.Client {
	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitStatus polls the outbox's status until cond holds (the database has no
// signal to wait on); it fails the test after timeout.
func (e *env) waitStatus(t testing.TB, timeout time.Duration, what string, cond func(outbox.Status) bool) outbox.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := e.ob.Status(context.Background(), e.db)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: status %+v", timeout, what, st)
		}
		<-tick.C
	}
}

// msgIDs returns the IDs of the outbox's rows that where (a WHERE clause,
// with args) selects.
func (e *env) msgIDs(t testing.TB, where string, args ...any) []string {
	t.Helper()
	rows, err := e.db.Query(`SELECT msg_id FROM `+e.schema+`.messaging_outbox `+where, args...)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// testLogger logs through t.Log, so relay logs appear with the test's
// output (and not between benchmark results).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// firstBatch returns an option that keeps the first batch a relay reports
// (WithOnBatch), and a function that waits up to 10s for it.
func firstBatch(t testing.TB) (outbox.RelayOption, func() outbox.BatchInfo) {
	batches := make(chan outbox.BatchInfo, 1)
	opt := outbox.WithOnBatch(func(b outbox.BatchInfo) {
		select {
		case batches <- b:
		default:
		}
	})
	return opt, func() outbox.BatchInfo {
		t.Helper()
		select {
		case b := <-batches:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no batch within 10s")
			return outbox.BatchInfo{}
		}
	}
}
