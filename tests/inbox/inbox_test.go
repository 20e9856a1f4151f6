package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/inbox"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
)

// newInbox returns an inbox in a fresh schema that also holds an "effects"
// table without any uniqueness: a message applied twice shows as two rows.
func newInbox(t testing.TB, opts ...inbox.Option) (*inbox.Inbox, *sql.DB, string) {
	t.Helper()
	db := brokertest.OpenPostgres(t)
	schema := brokertest.PostgresSchema(t, db)
	in, err := inbox.New(db, inbox.PostgreSQL(schema), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := in.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+schema+".effects (msg_id text NOT NULL, payload text)"); err != nil {
		t.Fatal(err)
	}
	return in, db, schema
}

func applyEffect(schema string) inbox.TxHandler {
	return func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO "+schema+".effects VALUES ($1, $2)", m.ID, string(m.Payload))
		return err
	}
}

// effects returns the number of effect rows and of distinct message IDs
// among them.
func effects(t testing.TB, db *sql.DB, schema string) (rows, distinct int) {
	t.Helper()
	if err := db.QueryRow("SELECT count(*), count(DISTINCT msg_id) FROM "+schema+".effects").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

// TestExactlyOnceOverBrokers is the inbox's counting test: every message is
// published N times with the same ID, the handler fails some first attempts
// after writing its effect (so the broker redelivers), deliveries run
// concurrently, and the database ends with each message's effect exactly
// once.
func TestExactlyOnceOverBrokers(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t testing.TB) messaging.Client
	}{
		{"Redis", func(t testing.TB) messaging.Client { return redistest.Open(t) }},
		{"RabbitMQ", func(t testing.TB) messaging.Client {
			return rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			in, db, schema := newInbox(t)
			c := b.open(t)
			topic := integration.UniqueName(t, "inbox")
			group := integration.UniqueName(t, "g")
			t.Cleanup(func() {
				if d, ok := c.(messaging.TopicDeleter); ok {
					_ = d.DeleteTopic(context.Background(), topic)
				}
			})
			const messages, copies = 60, 4
			var acked, failedOnce atomic.Int64
			var failMu sync.Mutex
			failed := map[string]bool{}
			h := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
				if err := applyEffect(schema)(ctx, tx, m); err != nil {
					return err
				}
				failMu.Lock()
				defer failMu.Unlock()
				if len(failed) < messages/3 && !failed[m.ID] {
					failed[m.ID] = true
					failedOnce.Add(1)
					return errors.New("injected failure after the effect")
				}
				return nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			sub, err := c.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
				err := h(ctx, m)
				if err == nil && acked.Add(1) == messages*copies {
					close(done)
				}
				return err
			}, messaging.Group(group), messaging.Concurrency(8))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for i := range messages {
				id := fmt.Sprintf("msg-%d-%s", i, topic)
				for range copies {
					if err := c.Publish(ctx, topic, &messaging.Message{ID: id, Key: fmt.Sprint(i % 7), Payload: []byte(id)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatalf("%d of %d deliveries acknowledged after 60s", acked.Load(), messages*copies)
			}
			rows, distinct := effects(t, db, schema)
			var records int
			if err := db.QueryRow("SELECT count(*) FROM "+schema+".messaging_inbox WHERE group_name = $1", group).Scan(&records); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d messages x %d copies, %d first attempts failed after their effect; effects %d (distinct %d), inbox records %d",
				b.name, messages, copies, failedOnce.Load(), rows, distinct, records)
			if rows != messages || distinct != messages || records != messages {
				t.Fatalf("effects %d (distinct %d), records %d; want %d each", rows, distinct, records, messages)
			}
		})
	}
}

// TestConcurrentDuplicatesRunOnce: many deliveries of one message at the
// same moment; the database serialises them and one runs the handler.
func TestConcurrentDuplicatesRunOnce(t *testing.T) {
	in, db, schema := newInbox(t, inbox.WithGroup("g"))
	var runs atomic.Int64
	release, started := make(chan struct{}), make(chan struct{})
	h := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		if runs.Add(1) == 1 {
			close(started)
		}
		<-release // hold the transaction open while the others arrive
		return applyEffect(schema)(ctx, tx, m)
	})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- h(context.Background(), &messaging.Message{ID: "same", Topic: "t"}) })
	}
	<-started
	// Wait until the seven others are blocked on the first one's inbox row
	// (PostgreSQL shows it; there is no signal to wait on).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%messaging_inbox%' AND query LIKE '%' || $1 || '%'`, schema).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries waiting on the lock, want 7", waiting)
		}
		time.Sleep(5 * time.Millisecond) // polling the database's state, not synchronising goroutines
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("delivery: %v", err)
		}
	}
	if rows, _ := effects(t, db, schema); rows != 1 || runs.Load() != 1 {
		t.Fatalf("handler ran %d times, %d effects; want 1, 1", runs.Load(), rows)
	}
}

// TestConcurrentDuplicateAfterRollback: the first delivery of a message
// holds its transaction while 4 more copies wait on its inbox row, then
// fails (rolls back). Exactly one of the waiting copies then runs the
// handler and commits ("or new, if the first rolled back"); the others are
// its duplicates.
func TestConcurrentDuplicateAfterRollback(t *testing.T) {
	in, db, schema := newInbox(t, inbox.WithGroup("g"))
	var runs atomic.Int64
	release, started := make(chan struct{}), make(chan struct{})
	h := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		n := runs.Add(1)
		if err := applyEffect(schema)(ctx, tx, m); err != nil {
			return err
		}
		if n == 1 {
			close(started)
			<-release
			return errors.New("first attempt fails")
		}
		return nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	wg.Go(func() { errs <- h(t.Context(), &messaging.Message{ID: "same", Topic: "t"}) })
	<-started
	for range 4 {
		wg.Go(func() { errs <- h(t.Context(), &messaging.Message{ID: "same", Topic: "t"}) })
	}
	integration.Eventually(t, 10*time.Second, func() error {
		var waiting int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%messaging_inbox%' AND query LIKE '%' || $1 || '%'`, schema).Scan(&waiting); err != nil {
			return err
		}
		if waiting != 4 {
			return fmt.Errorf("%d copies wait on the first one's row, want 4", waiting)
		}
		return nil
	})
	close(release)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	rows, _ := effects(t, db, schema)
	if failed != 1 || rows != 1 || runs.Load() != 2 {
		t.Fatalf("%d failed, %d effects, %d handler runs; want 1, 1, 2", failed, rows, runs.Load())
	}
}

// TestFailureRollsBack: a failing or panicking handler leaves neither its
// effect nor the record, so the redelivery applies it.
func TestFailureRollsBack(t *testing.T) {
	in, db, schema := newInbox(t)
	m := &messaging.Message{ID: "m1", Topic: "t", Group: "g"}
	fail := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		if err := applyEffect(schema)(ctx, tx, m); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err := fail(context.Background(), m); err == nil || err.Error() != "boom" {
		t.Fatalf("failing handler: %v, want boom", err)
	}
	panicking := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		_ = applyEffect(schema)(ctx, tx, m)
		panic("handler panic")
	})
	func() {
		defer func() { _ = recover() }()
		_ = panicking(context.Background(), m)
	}()
	if rows, _ := effects(t, db, schema); rows != 0 {
		t.Fatalf("%d effects after failures, want 0", rows)
	}
	ok := in.Handler(applyEffect(schema))
	for range 3 {
		if err := ok(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := effects(t, db, schema); rows != 1 {
		t.Fatalf("%d effects, want 1", rows)
	}
	// Another group is another consumer: it applies the message too.
	m2 := m.Clone()
	m2.Group = "other"
	if err := ok(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	if rows, _ := effects(t, db, schema); rows != 2 {
		t.Fatalf("%d effects after a second group, want 2", rows)
	}
}

func TestMiddlewareGivesTheTransaction(t *testing.T) {
	var dups atomic.Int64
	in, db, schema := newInbox(t, inbox.WithGroup("g"), inbox.WithOnDuplicate(func(context.Context, *messaging.Message) { dups.Add(1) }))
	h := messaging.Chain(func(ctx context.Context, m *messaging.Message) error {
		tx := inbox.Tx(ctx)
		if tx == nil {
			return errors.New("no transaction in the context")
		}
		return applyEffect(schema)(ctx, tx, m)
	}, in.Middleware())
	for range 2 {
		if err := h(context.Background(), &messaging.Message{ID: "x", Topic: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := effects(t, db, schema); rows != 1 || dups.Load() != 1 {
		t.Fatalf("%d effects, %d duplicates reported; want 1, 1", rows, dups.Load())
	}
	if inbox.Tx(context.Background()) != nil {
		t.Fatal("Tx outside a handler should be nil")
	}
}

func TestNoGroupIsPermanent(t *testing.T) {
	in, _, schema := newInbox(t)
	err := in.Handler(applyEffect(schema))(context.Background(), &messaging.Message{ID: "x", Topic: "t"})
	if !errors.Is(err, inbox.ErrNoGroup) || !messaging.IsPermanent(err) {
		t.Fatalf("%v, want permanent ErrNoGroup", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	db := brokertest.OpenPostgres(t)
	for name, opt := range map[string]inbox.Option{
		"retention": inbox.WithTTL(0),
		"group":     inbox.WithGroup("bad group"),
		"read-only": inbox.WithTxOptions(&sql.TxOptions{ReadOnly: true}),
	} {
		if _, err := inbox.New(db, inbox.PostgreSQL("x"), opt); !errors.Is(err, messaging.ErrInvalidOption) && !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("%s: %v, want an invalid-option error", name, err)
		}
	}
}

// TestCleanup deletes records past the retention only.
func TestCleanup(t *testing.T) {
	in, db, schema := newInbox(t, inbox.WithGroup("g"), inbox.WithTTL(time.Hour))
	h := in.Handler(applyEffect(schema))
	for _, id := range []string{"old1", "old2", "new"} {
		if err := h(context.Background(), &messaging.Message{ID: id, Topic: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("UPDATE " + schema + ".messaging_inbox SET handled_at = now() - interval '2 hours' WHERE msg_id LIKE 'old%'"); err != nil {
		t.Fatal(err)
	}
	n, err := in.Cleanup(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("Cleanup: %d, %v; want 2", n, err)
	}
	var left string
	if err := db.QueryRow("SELECT string_agg(msg_id, ',') FROM " + schema + ".messaging_inbox").Scan(&left); err != nil || left != "new" {
		t.Fatalf("left %q, %v", left, err)
	}
}

// logged is a slog handler that sends each record's message on a channel.
type logged chan slog.Record

func (l logged) Enabled(context.Context, slog.Level) bool { return true }
func (l logged) Handle(_ context.Context, r slog.Record) error {
	select {
	case l <- r:
	default:
	}
	return nil
}
func (l logged) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logged) WithGroup(string) slog.Handler      { return l }

// TestRunCleanupLogsFailures: a cleanup that fails (here: the table was
// never migrated) is logged at Warn with its error, not dropped, and
// RunCleanup keeps going until its ctx ends.
func TestRunCleanupLogsFailures(t *testing.T) {
	db := brokertest.OpenPostgres(t)
	schema := brokertest.PostgresSchema(t, db) // no Migrate: no table
	logs := make(logged, 8)
	in, err := inbox.New(db, inbox.PostgreSQL(schema), inbox.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() { ended <- in.RunCleanup(ctx, 10*time.Millisecond) }()
	for range 2 { // the first run and a retry
		select {
		case r := <-logs:
			var msg string
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "error" {
					msg = a.Value.String()
				}
				return true
			})
			if r.Level != slog.LevelWarn || !strings.Contains(msg, "inbox: cleanup") {
				t.Errorf("logged %v %q (error %q), want a warning with the cleanup's error", r.Level, r.Message, msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no failed cleanup logged within 10s")
		}
	}
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("RunCleanup returned %v, want context.Canceled", err)
	}
	if _, err := inbox.New(db, inbox.PostgreSQL(schema), inbox.WithLogger(nil)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("WithLogger(nil): %v, want ErrInvalidOption", err)
	}
}

// TestTxOptionsApplied: the handler's transaction has the isolation level
// WithTxOptions gives.
func TestTxOptionsApplied(t *testing.T) {
	in, _, _ := newInbox(t, inbox.WithGroup("g"), inbox.WithTxOptions(&sql.TxOptions{Isolation: sql.LevelSerializable}))
	var level string
	h := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		return tx.QueryRowContext(ctx, "SHOW transaction_isolation").Scan(&level)
	})
	if err := h(context.Background(), &messaging.Message{ID: "x", Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	if level != "serializable" {
		t.Fatalf("handler's transaction isolation %q, want serializable (WithTxOptions)", level)
	}
}

// TestWithGroupOverridesMessageGroup: with WithGroup the records are kept
// under that group, not the delivered message's: deliveries of one message
// to two groups that share records apply it once.
func TestWithGroupOverridesMessageGroup(t *testing.T) {
	in, db, schema := newInbox(t, inbox.WithGroup("shared"))
	h := in.Handler(applyEffect(schema))
	for _, g := range []string{"a", "b"} {
		if err := h(context.Background(), &messaging.Message{ID: "x", Topic: "t", Group: g}); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := effects(t, db, schema); rows != 1 {
		t.Fatalf("%d effects from two groups sharing records (WithGroup), want 1", rows)
	}
	var group string
	if err := db.QueryRow("SELECT group_name FROM " + schema + ".messaging_inbox").Scan(&group); err != nil || group != "shared" {
		t.Fatalf("record kept under group %q (%v), want shared", group, err)
	}
}

// TestCleanupDeletesEveryExpiredRecord: Cleanup deletes every record past
// the retention, however many (it deletes in chunks of 1000), and returns
// how many.
func TestCleanupDeletesEveryExpiredRecord(t *testing.T) {
	in, db, schema := newInbox(t, inbox.WithTTL(time.Hour))
	if _, err := db.Exec(`INSERT INTO ` + schema + `.messaging_inbox (group_name, msg_id, topic, handled_at)
		SELECT 'g', 'old-' || i, 't', now() - interval '2 hours' FROM generate_series(1, 2500) i`); err != nil {
		t.Fatal(err)
	}
	n, err := in.Cleanup(context.Background())
	if err != nil || n != 2500 {
		t.Fatalf("Cleanup: %d, %v; want 2500", n, err)
	}
	var left int
	if err := db.QueryRow("SELECT count(*) FROM " + schema + ".messaging_inbox").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d records left (%v), want 0", left, err)
	}
}

// TestFailedCommitIsReturned: a commit that fails (here: a deferred
// constraint checked at commit) rolls back the record with the effects and
// returns the error, so the broker redelivers and the next attempt runs
// the handler again.
func TestFailedCommitIsReturned(t *testing.T) {
	in, db, schema := newInbox(t, inbox.WithGroup("g"))
	if _, err := db.Exec("CREATE TABLE " + schema + ".once (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)"); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	h := in.Handler(func(ctx context.Context, tx *sql.Tx, m *messaging.Message) error {
		if runs.Add(1) == 1 { // the first attempt breaks the constraint; its commit fails
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+schema+".once VALUES (1), (1)"); err != nil {
				return err
			}
		}
		return applyEffect(schema)(ctx, tx, m)
	})
	m := &messaging.Message{ID: "x", Topic: "t"}
	if err := h(context.Background(), m); err == nil || !strings.Contains(err.Error(), "inbox: commit x") {
		t.Fatalf("handler whose commit fails: %v, want the commit's error", err)
	}
	if rows, _ := effects(t, db, schema); rows != 0 {
		t.Fatalf("%d effects after a failed commit, want 0", rows)
	}
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if rows, _ := effects(t, db, schema); rows != 1 || runs.Load() != 2 {
		t.Fatalf("after the redelivery: %d effects, %d handler runs; want 1, 2", rows, runs.Load())
	}
}
