package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/brokertest"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

func TestMigrateIsIdempotentAndTheSQLFileRunsByHand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.ob.Migrate(ctx, e.db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	// An operator runs the plain file in a schema of their choice.
	byHand := brokertest.PostgresSchema(t, e.db)
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE SCHEMA " + byHand, "SET LOCAL search_path TO " + byHand, outbox.PostgresSchema} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(byHand)))
	e2 := &env{db: e.db, ob: ob, schema: byHand}
	e2.enqueue(t, "orders", true, &messaging.Message{Payload: []byte("x")})
	st, err := ob.Status(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 1 || len(st.Partitions) != 16 {
		t.Fatalf("status of the hand-made outbox: backlog %d, %d partitions; want 1, 16", st.Backlog, len(st.Partitions))
	}
}

func TestEnqueueValidates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := e.ob.Enqueue(ctx, tx, "bad topic", &messaging.Message{}); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("invalid topic: %v, want ErrInvalidTopic", err)
	}
	if err := e.ob.Enqueue(ctx, tx, "t", nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("nil message: %v, want ErrInvalidOption", err)
	}
	if err := e.ob.Enqueue(ctx, nil, "t", &messaging.Message{}); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("nil tx: %v, want ErrInvalidOption", err)
	}
}

func TestRelayOptionsValidated(t *testing.T) {
	e := newEnv(t)
	pub := openMemory(t)
	for name, opt := range map[string]outbox.RelayOption{
		"batch 0":     outbox.WithBatchSize(0),
		"batch 10001": outbox.WithBatchSize(10001),
		"poll 0":      outbox.WithPollInterval(0),
		"ttl 100ms":   outbox.WithLeaseTTL(100 * time.Millisecond),
		"retention":   outbox.WithKeepForwarded(-time.Second),
		"cleanup":     outbox.WithCleanupInterval(0),
		"id":          outbox.WithRelayID(""),
	} {
		if _, err := e.ob.NewRelay(e.db, pub, opt); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
}

// TestMessagePreserved: ID (set at Enqueue, before commit), key, payload,
// header (bytes a JSON or text column would not keep) and time arrive as
// enqueued.
func TestMessagePreserved(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "preserved", col.Handler())
	e.startRelay(t, c)
	at := time.Date(2025, 3, 4, 5, 6, 7, 891011000, time.UTC)
	msgs := []*messaging.Message{
		{Key: "k\x00ey", Payload: []byte{0, 1, 2, 0xff}, Header: messaging.Header{"a": "1", "nul": "x\x00y", "bad-utf8": "\xff\xfe"}, Time: at},
		{ID: "my-own-id", Payload: nil},
	}
	e.enqueue(t, "preserved", true, msgs...)
	if msgs[0].ID == "" || msgs[0].Time != at {
		t.Fatalf("Enqueue left ID %q, changed Time to %v", msgs[0].ID, msgs[0].Time)
	}
	col.WaitDistinct(t, 2, 10*time.Second)
	got := map[string]*messaging.Message{}
	for _, m := range col.Messages() {
		got[m.ID] = m
	}
	g := got[msgs[0].ID]
	if g == nil || g.Key != msgs[0].Key || !bytes.Equal(g.Payload, msgs[0].Payload) || !g.Time.Equal(at) || fmt.Sprint(g.Header) != fmt.Sprint(msgs[0].Header) {
		t.Fatalf("got %+v, want %+v", g, msgs[0])
	}
	if g := got["my-own-id"]; g == nil || len(g.Payload) != 0 || len(g.Header) != 0 {
		t.Fatalf("second message: %+v", g)
	}
}

// TestCommittedDeliveredRolledBackNot is the outbox's counting test: many
// concurrent transactions enqueue, some commit and some roll back; every
// committed message reaches the broker, no rolled-back one does.
func TestCommittedDeliveredRolledBackNot(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b backend, topic string) {
		e := newEnv(t)
		c := b.open(t)
		col := integration.NewCollector()
		subscribe(t, c, topic, col.Handler())
		r, _ := e.startRelay(t, c, outbox.WithBatchSize(50))

		const writers, txPerWriter = 4, 60
		var mu sync.Mutex
		var committed, rolledBack []string
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for i := range txPerWriter {
					n := 1 + rng.IntN(5)
					msgs := make([]*messaging.Message, n)
					for j := range msgs {
						msgs[j] = &messaging.Message{Key: fmt.Sprintf("k%d", rng.IntN(10)), Payload: []byte(fmt.Sprintf("w%d-%d-%d", w, i, j))}
					}
					commit := rng.IntN(3) != 0
					ids := e.enqueue(t, topic, commit, msgs...)
					mu.Lock()
					if commit {
						committed = append(committed, ids...)
					} else {
						rolledBack = append(rolledBack, ids...)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		col.WaitDistinct(t, len(committed), 60*time.Second)
		// Every committed row is forwarded and deleted; a rolled-back one
		// was never there, so an empty backlog means none can still come.
		e.waitStatus(t, 10*time.Second, "empty backlog", func(s outbox.Status) bool { return s.Backlog == 0 })
		col.Report(t, committed)
		for _, id := range rolledBack {
			if col.Count(id) > 0 {
				t.Errorf("message %s of a rolled-back transaction was delivered", id)
			}
		}
		if col.Distinct() != len(committed) {
			t.Errorf("%d distinct deliveries, %d committed", col.Distinct(), len(committed))
		}
		st := r.Stats()
		t.Logf("%s: committed %d, rolled back %d; relay: %d batches, %d forwarded", b.name, len(committed), len(rolledBack), st.Batches, st.Forwarded)
		if st.Forwarded != uint64(len(committed)) {
			t.Errorf("relay forwarded %d, want %d", st.Forwarded, len(committed))
		}
	})
}

// checkKeyOrder fails t when, for some key, a message was delivered for the
// first time before an earlier message (by its "seq" header) of that key.
func checkKeyOrder(t *testing.T, msgs []*messaging.Message) {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]int{}
	bad := 0
	for _, m := range msgs {
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		seq, err := strconv.Atoi(m.Header["seq"])
		if err != nil {
			t.Fatalf("message %s without seq header", m.ID)
		}
		if prev, ok := last[m.Key]; ok && seq != prev+1 {
			bad++
			if bad <= 5 {
				t.Errorf("key %s: seq %d delivered (first time) after %d", m.Key, seq, prev)
			}
		} else if !ok && seq != 0 {
			t.Errorf("key %s: first delivery is seq %d", m.Key, seq)
		}
		last[m.Key] = max(last[m.Key], seq)
	}
	if bad > 0 {
		t.Errorf("%d out-of-order first deliveries", bad)
	}
}

// TestPerKeyOrderAcrossRelays: two relays with their own broker
// connections forward one outbox while writers commit; the second relay
// starts midway (the partitions are shared out) and the first stops later
// (the second takes everything over). Every key's messages are delivered
// for the first time in commit order.
func TestPerKeyOrderAcrossRelays(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b backend, topic string) {
		e := newEnv(t)
		consumer := b.open(t)
		var mu sync.Mutex
		var delivered []*messaging.Message
		col := integration.NewCollector()
		subscribe(t, consumer, topic, func(ctx context.Context, m *messaging.Message) error {
			mu.Lock()
			delivered = append(delivered, m.Clone())
			mu.Unlock()
			col.Add(m)
			return nil
		})
		ttl := outbox.WithLeaseTTL(900 * time.Millisecond)
		r1, stop1 := e.startRelay(t, b.open(t), ttl, outbox.WithBatchSize(20), outbox.WithRelayID("r1"))

		// Each writer owns its keys and commits them one transaction after
		// the other, so a key's seq order is its commit order.
		const writers, keysPerWriter, txPerWriter = 4, 8, 75
		var all []string
		var allMu sync.Mutex
		// At each phase the writers stop until the relays have changed
		// (joined is closed once r2 holds partitions, stopped once r1 has
		// stopped), so each relay is sure to have work of its own.
		phase := [2]sync.WaitGroup{}
		phase[0].Add(writers)
		phase[1].Add(writers)
		joined, stopped := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		var r2 *outbox.Relay
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 2))
				seq := make([]int, keysPerWriter)
				for i := range txPerWriter {
					switch i {
					case txPerWriter / 3:
						phase[0].Done()
						<-joined
					case 2 * txPerWriter / 3:
						phase[1].Done()
						<-stopped
					}
					n := 1 + rng.IntN(4)
					msgs := make([]*messaging.Message, n)
					for j := range msgs {
						k := rng.IntN(keysPerWriter)
						msgs[j] = &messaging.Message{Key: fmt.Sprintf("w%d-k%d", w, k), Header: messaging.Header{"seq": strconv.Itoa(seq[k])}}
						seq[k]++
					}
					ids := e.enqueue(t, topic, true, msgs...)
					allMu.Lock()
					all = append(all, ids...)
					allMu.Unlock()
				}
			})
		}
		// A third of the way: a second relay joins.
		phase[0].Wait()
		r2, _ = e.startRelay(t, b.open(t), ttl, outbox.WithBatchSize(20), outbox.WithRelayID("r2"))
		e.waitStatus(t, 10*time.Second, "r2 holds partitions", func(s outbox.Status) bool {
			for _, r := range s.Relays {
				if r.ID == "r2" && r.Partitions > 0 {
					return true
				}
			}
			return false
		})
		close(joined)
		// Two thirds: the first relay stops and hands over.
		phase[1].Wait()
		stop1()
		close(stopped)
		wg.Wait()
		col.WaitDistinct(t, len(all), 60*time.Second)
		col.Report(t, all)
		mu.Lock()
		checkKeyOrder(t, delivered)
		mu.Unlock()
		s1, s2 := r1.Stats(), r2.Stats()
		t.Logf("%s: %d messages; r1 forwarded %d, r2 forwarded %d", b.name, len(all), s1.Forwarded, s2.Forwarded)
		if s1.Forwarded == 0 || s2.Forwarded == 0 {
			t.Errorf("both relays should have forwarded: r1 %d, r2 %d", s1.Forwarded, s2.Forwarded)
		}
	})
}

// TestStatus: backlog and oldest age before a relay runs, the relay and its
// leases while it runs, free leases after it stopped.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := e.ob.Status(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 0 || st.OldestAge != 0 || len(st.Relays) != 0 || len(st.Partitions) != 16 {
		t.Fatalf("empty outbox: %+v", st)
	}
	for i := range 10 {
		e.enqueue(t, "status", true, &messaging.Message{Key: strconv.Itoa(i)})
	}
	st, err = e.ob.Status(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range st.Partitions {
		sum += p.Backlog
		if p.Owner != "" {
			t.Errorf("partition %d owned by %q with no relay running", p.Partition, p.Owner)
		}
	}
	if st.Backlog != 10 || sum != 10 || st.OldestAge <= 0 {
		t.Fatalf("backlog %d (partitions sum %d), oldest %v; want 10, 10, > 0", st.Backlog, sum, st.OldestAge)
	}
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "status", col.Handler())
	_, stop := e.startRelay(t, c, outbox.WithRelayID("status-relay"))
	col.WaitDistinct(t, 10, 10*time.Second)
	st = e.waitStatus(t, 10*time.Second, "drained", func(s outbox.Status) bool { return s.Backlog == 0 })
	if len(st.Relays) != 1 || st.Relays[0].ID != "status-relay" || st.Relays[0].Partitions != 16 || st.OldestAge != 0 {
		t.Fatalf("running relay: %+v", st)
	}
	for _, p := range st.Partitions {
		if p.Owner != "status-relay" || p.ExpiresIn <= 0 {
			t.Fatalf("partition %+v, want owned by status-relay", p)
		}
	}
	stop()
	st, err = e.ob.Status(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Relays) != 0 || st.Partitions[0].Owner != "" {
		t.Fatalf("after Run returned, leases should be released: %+v", st)
	}
}

// TestNotifyWakesRelay: with a poll interval of an hour, only a
// notification can make the relay forward a message committed after it went
// idle.
func TestNotifyWakesRelay(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "notify", col.Handler())
	// A first message proves the relay is up and idle (waiting) afterwards.
	e.enqueue(t, "notify", true, &messaging.Message{})
	var batches sync.WaitGroup
	batches.Add(1)
	var once sync.Once
	e.startRelay(t, c, outbox.WithPollInterval(time.Hour), outbox.WithOnBatch(func(outbox.BatchInfo) { once.Do(batches.Done) }))
	col.WaitDistinct(t, 1, 10*time.Second)
	batches.Wait()
	for i := range 3 {
		start := time.Now()
		e.enqueue(t, "notify", true, &messaging.Message{})
		col.WaitDistinct(t, 2+i, 5*time.Second)
		t.Logf("commit to delivery with NOTIFY: %v", time.Since(start))
	}
}

// TestPollingOnly: without LISTEN the relay finds rows by polling.
func TestPollingOnly(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "poll", col.Handler())
	e.startRelay(t, c, outbox.WithPolling(), outbox.WithPollInterval(50*time.Millisecond))
	ids := e.enqueue(t, "poll", true, &messaging.Message{}, &messaging.Message{})
	col.WaitDistinct(t, 2, 10*time.Second)
	col.Report(t, ids)
}

// TestRetention: forwarded rows are kept (marked) for the retention and
// deleted by the relay's cleanup afterwards.
func TestRetention(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "retain", col.Handler())
	_, stop := e.startRelay(t, c, outbox.WithKeepForwarded(time.Hour))
	e.enqueue(t, "retain", true, &messaging.Message{}, &messaging.Message{}, &messaging.Message{})
	col.WaitDistinct(t, 3, 10*time.Second)
	e.waitStatus(t, 10*time.Second, "3 rows retained", func(s outbox.Status) bool { return s.Backlog == 0 && s.Retained == 3 })
	stop()
	// Retention is the subject here: a short one, and the cleanup deletes.
	e.startRelay(t, c, outbox.WithKeepForwarded(time.Millisecond), outbox.WithCleanupInterval(20*time.Millisecond))
	e.waitStatus(t, 10*time.Second, "retained rows deleted", func(s outbox.Status) bool { return s.Retained == 0 })
	if col.Total() != 3 {
		t.Fatalf("%d deliveries, want 3 (retained rows must not be sent again)", col.Total())
	}
}

// TestPartialPublishFailure: a publisher rejects one message of a batch
// and accepts the later ones of the same key. The relay sends the rejected
// message again and every later one of its key after it (not only the
// rejected one), so the key's last deliveries are in order.
func TestPartialPublishFailure(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	var mu sync.Mutex
	var delivered []*messaging.Message
	subscribe(t, c, "partial", func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		delivered = append(delivered, m.Clone())
		mu.Unlock()
		return nil
	})
	failOnce := map[string]bool{"1": true}
	var calls sync.WaitGroup
	calls.Add(1)
	pub := messaging.PublishFunc(func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		pe := &messaging.PublishError{Errs: make([]error, len(msgs))}
		failed := false
		for i, m := range msgs {
			if failOnce[m.Header["seq"]] && m.Key == "a" {
				delete(failOnce, m.Header["seq"])
				pe.Errs[i] = errors.New("injected")
				failed = true
				continue
			}
			if err := c.Publish(ctx, topic, m); err != nil {
				pe.Errs[i] = err
				failed = true
			}
		}
		if failed {
			defer calls.Done()
			return pe
		}
		return nil
	})
	var infos []outbox.BatchInfo
	var imu sync.Mutex
	r, _ := e.startRelay(t, pub, outbox.WithOnBatch(func(b outbox.BatchInfo) { imu.Lock(); infos = append(infos, b); imu.Unlock() }))
	var msgs []*messaging.Message
	for i := range 4 {
		msgs = append(msgs, &messaging.Message{Key: "a", Header: messaging.Header{"seq": strconv.Itoa(i)}})
	}
	e.enqueue(t, "partial", true, msgs...)
	calls.Wait()
	e.waitStatus(t, 10*time.Second, "drained", func(s outbox.Status) bool { return s.Backlog == 0 })
	mu.Lock()
	defer mu.Unlock()
	var seqs []string
	for _, m := range delivered {
		seqs = append(seqs, m.Header["seq"])
	}
	t.Logf("deliveries: %v; stats %+v", seqs, r.Stats())
	if got := fmt.Sprint(seqs); got != "[0 2 3 1 2 3]" {
		t.Errorf("deliveries by seq %s, want [0 2 3 1 2 3]", got)
	}
	if r.Stats().Failed != 3 { // seq 1 failed, 2 and 3 held back
		t.Errorf("Failed = %d, want 3", r.Stats().Failed)
	}
}

// TestListenReconnects: the relay's LISTEN connection is killed by the
// server; the relay listens again and is woken by the next commit (its
// poll interval is an hour, so only a notification or the re-listen's
// wake-up can deliver).
func TestListenReconnects(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "relisten", col.Handler())
	e.startRelay(t, c, outbox.WithPollInterval(time.Hour))
	listeners := func() []int {
		rows, err := e.db.Query(`SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'`, e.schema)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var pids []int
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
		return pids
	}
	// Nothing signals that LISTEN ran; the server's view is the signal.
	deadline := time.Now().Add(10 * time.Second)
	var pids []int
	for pids = listeners(); len(pids) == 0; pids = listeners() {
		if time.Now().After(deadline) {
			t.Fatal("the relay never listened")
		}
		time.Sleep(10 * time.Millisecond) // polling the server's state
	}
	if _, err := e.db.Exec("SELECT pg_terminate_backend($1)", pids[0]); err != nil {
		t.Fatal(err)
	}
	for {
		if now := listeners(); len(now) == 1 && now[0] != pids[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay did not listen again within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling the server's state
	}
	ids := e.enqueue(t, "relisten", true, &messaging.Message{})
	col.WaitDistinct(t, 1, 5*time.Second)
	col.Report(t, ids)
}

// TestMigrateErrorIsTheOutboxs: a failed Migrate (here: its context is
// already cancelled) returns an error with the package prefix, as the
// outbox's other errors and the inbox's Migrate do, wrapping the cause.
func TestMigrateErrorIsTheOutboxs(t *testing.T) {
	db := brokertest.OpenPostgres(t)
	ob := mwtest.Must(outbox.New(outbox.PostgreSQL(brokertest.PostgresSchema(t, db))))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ob.Migrate(ctx, db)
	if err == nil || !strings.HasPrefix(err.Error(), "outbox: ") || !errors.Is(err, context.Canceled) {
		t.Fatalf("Migrate with a cancelled context: %v; want an error starting with \"outbox: \" wrapping context.Canceled", err)
	}
}
