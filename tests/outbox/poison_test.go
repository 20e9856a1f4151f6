package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/outbox"
)

// poisonBroker is a memory broker that refuses messages over 1 KiB (with
// messaging.ErrMessageTooLarge, failing the whole Publish call before
// anything is sent, as every adapter does), and a collector of what it
// delivers on topics.
func poisonBroker(t *testing.T, topics ...string) (messaging.Client, *integration.Collector) {
	t.Helper()
	c, err := memory.New(memory.WithMaxMessageSize(1024))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	col := integration.NewCollector()
	for _, topic := range topics {
		subscribe(t, c, topic, col.Handler())
	}
	return c, col
}

func poison(key string) *messaging.Message {
	return &messaging.Message{Key: key, Payload: make([]byte, 2048)}
}

func keyed(prefix string, n int) []*messaging.Message {
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{Key: fmt.Sprintf("%s%d", prefix, i)}
	}
	return msgs
}

// TestPoisonMessageDoesNotStopItsTopic: one message the broker always
// refuses (too large) is fetched in a batch with messages of other keys on
// the same topic. The broker fails the whole Publish call for it; the
// relay must still forward the other keys' messages, and hold back only the
// poison and the later messages of its key.
func TestPoisonMessageDoesNotStopItsTopic(t *testing.T) {
	e := newEnv(t)
	c, col := poisonBroker(t, "poison")
	bad := e.enqueue(t, "poison", true, poison("bad"), &messaging.Message{Key: "bad"})
	good := e.enqueue(t, "poison", true, keyed("k", 5)...)
	e.startRelay(t, c, outbox.WithBatchSize(10))
	col.WaitDistinct(t, len(good), 20*time.Second)
	if missing := col.Missing(good); len(missing) > 0 {
		t.Fatalf("messages of other keys not delivered: %v", missing)
	}
	e.waitStatus(t, 10*time.Second, "the poison and its key's next message left", func(s outbox.Status) bool { return s.Backlog == 2 })
	for _, id := range bad {
		if col.Count(id) > 0 {
			t.Errorf("message %s of the poisoned key was delivered (before the poison, out of order)", id)
		}
	}
}

// TestPoisonKeyDoesNotStopOtherPartitions: a poison message whose key has
// more messages waiting behind it than a batch holds. Rows are fetched in
// seq order, so without care every batch is that key's held-back rows and
// the relay stops for all partitions (or crawls at one batch per backoff).
// Every message of the other partitions, on the same topic or another,
// must be forwarded promptly.
func TestPoisonKeyDoesNotStopOtherPartitions(t *testing.T) {
	e := newEnv(t)
	c, col := poisonBroker(t, "poison", "other")
	e.enqueue(t, "poison", true, poison("bad"))
	behind := make([]*messaging.Message, 30)
	for i := range behind {
		behind[i] = &messaging.Message{Key: "bad"}
	}
	e.enqueue(t, "poison", true, behind...)
	e.enqueue(t, "poison", true, keyed("k", 200)...)
	e.enqueue(t, "other", true, keyed("o", 100)...)
	// The messages outside the poisoned key's partition must all arrive.
	want := e.msgIDs(t, `WHERE part <> (SELECT part FROM `+e.schema+`.messaging_outbox WHERE msg_key = 'bad' LIMIT 1)`)
	if len(want) < 250 {
		t.Fatalf("only %d messages outside the poisoned partition; the test needs more", len(want))
	}
	e.startRelay(t, c, outbox.WithBatchSize(10))
	ok := col.Wait(20*time.Second, func(col *integration.Collector) bool { return len(col.Missing(want)) == 0 })
	if !ok {
		t.Fatalf("%d of %d messages of healthy partitions not delivered within 20s", len(col.Missing(want)), len(want))
	}
}

// TestPoisonSplitStopsWhenBrokerDown: a call refused whole for a too-large
// message is made again message by message; when one of those calls fails
// for another reason (the broker went down), the relay stops there rather
// than trying every other message of the batch against a down broker
// (each such call can wait for the publisher's unavailable timeout).
func TestPoisonSplitStopsWhenBrokerDown(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	singles := 0
	pub := messaging.PublishFunc(func(_ context.Context, topic string, msgs ...*messaging.Message) error {
		if len(msgs) > 1 {
			return fmt.Errorf("message 0: %w", messaging.ErrMessageTooLarge)
		}
		mu.Lock()
		singles++
		mu.Unlock()
		return fmt.Errorf("injected: %w", messaging.ErrUnavailable)
	})
	e.enqueue(t, "split", true, keyed("k", 20)...)
	type first struct {
		info    outbox.BatchInfo
		singles int // one-message calls made for it
	}
	batches := make(chan first, 1)
	e.startRelay(t, pub, outbox.WithOnBatch(func(b outbox.BatchInfo) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case batches <- first{b, singles}:
		default:
		}
	}))
	b := <-batches
	if b.info.Fetched != 20 || b.info.Failed != 20 {
		t.Fatalf("first batch %+v, want 20 fetched and failed", b.info)
	}
	if b.singles != 1 {
		t.Errorf("%d one-message calls after the broker failed one, want 1", b.singles)
	}
}

// TestCorruptRowDoesNotStopRelay: a row whose stored header does not decode
// (written by hand or by another program) cannot be published, but must
// not stop the relay: the other rows, of its partition too, are forwarded,
// and the corrupt row stays in the backlog.
func TestCorruptRowDoesNotStopRelay(t *testing.T) {
	e := newEnv(t)
	c, col := poisonBroker(t, "corrupt")
	if _, err := e.db.Exec(`INSERT INTO ` + e.schema + `.messaging_outbox (msg_id, topic, msg_key, payload, headers, msg_time)
		VALUES ('corrupt-1', 'corrupt', 'bad', '', '\x05'::bytea, now())`); err != nil {
		t.Fatal(err)
	}
	good := e.enqueue(t, "corrupt", true, keyed("k", 50)...)
	e.startRelay(t, c, outbox.WithBatchSize(10))
	col.WaitDistinct(t, len(good), 20*time.Second)
	col.Report(t, good)
	e.waitStatus(t, 10*time.Second, "only the corrupt row left", func(s outbox.Status) bool { return s.Backlog == 1 })
}

// TestPoisonRetryDoesNotIdleOtherPartitions: a partition whose only row is
// a message the broker refuses is retried alone each time its backoff
// ends; that batch is short, while the other partitions still have a
// backlog of full batches. The relay must go on with them, not wait for
// the poll interval (an hour here: NOTIFY wakes the relay, as documented)
// or until the next retry, which then comes first again: the other
// partitions would get nothing until the lease renewal.
func TestPoisonRetryDoesNotIdleOtherPartitions(t *testing.T) {
	e := newEnv(t)
	c, col := poisonBroker(t, "poison")
	bad := e.enqueue(t, "poison", true, poison("bad"))
	e.enqueue(t, "poison", true, keyed("k", 3000)...)
	// The poison alone in its partition, so that its retries fetch one row.
	if _, err := e.db.Exec(`DELETE FROM `+e.schema+`.messaging_outbox WHERE msg_id <> $1
		AND part = (SELECT part FROM `+e.schema+`.messaging_outbox WHERE msg_id = $1)`, bad[0]); err != nil {
		t.Fatal(err)
	}
	want := e.msgIDs(t, `WHERE msg_id <> $1`, bad[0])
	e.startRelay(t, c, outbox.WithBatchSize(10), outbox.WithPollInterval(time.Hour), outbox.WithLeaseTTL(2*time.Minute))
	ok := col.Wait(20*time.Second, func(col *integration.Collector) bool { return len(col.Missing(want)) == 0 })
	if !ok {
		t.Fatalf("%d of %d messages of healthy partitions not delivered within 20s", len(col.Missing(want)), len(want))
	}
}

// TestCorruptRowHoldsBackItsKey: the rows of a key after one that cannot
// be read are not published (their key's order would break), while
// another key's row in the same batch is.
func TestCorruptRowHoldsBackItsKey(t *testing.T) {
	e := newEnv(t)
	c, col := poisonBroker(t, "corrupt")
	if _, err := e.db.Exec(`INSERT INTO ` + e.schema + `.messaging_outbox (msg_id, topic, msg_key, payload, headers, msg_time)
		VALUES ('corrupt-1', 'corrupt', 'bad', '', '\x05'::bytea, now())`); err != nil {
		t.Fatal(err)
	}
	later := e.enqueue(t, "corrupt", true, &messaging.Message{Key: "bad"}, &messaging.Message{Key: "bad"})
	other := e.enqueue(t, "corrupt", true, &messaging.Message{Key: "other"})
	onBatch, first := firstBatch(t)
	e.startRelay(t, c, onBatch)
	if b := first(); b.Fetched != 4 || b.Forwarded != 1 || b.Failed != 3 {
		t.Errorf("first batch %+v; want 4 fetched, 1 forwarded (the other key), 3 failed (the corrupt row and the 2 after it)", b)
	}
	col.WaitDistinct(t, 1, 10*time.Second)
	col.Report(t, other)
	if got := e.msgIDs(t, "WHERE msg_key = 'bad' AND seq > (SELECT seq FROM "+e.schema+".messaging_outbox WHERE msg_id = 'corrupt-1') ORDER BY seq"); fmt.Sprint(got) != fmt.Sprint(later) {
		t.Errorf("rows of the key after the corrupt one left in the outbox: %v, want %v", got, later)
	}
}

// nilMessageDialect is a Dialect whose Fetch returns the row of message
// id without its Message, as a third-party dialect might for a row it
// cannot read.
type nilMessageDialect struct {
	outbox.Dialect
	id string
}

func (d nilMessageDialect) Fetch(ctx context.Context, db *sql.DB, parts []int, limit int) ([]outbox.Record, error) {
	recs, err := d.Dialect.Fetch(ctx, db, parts, limit)
	for i := range recs {
		if recs[i].Message != nil && recs[i].Message.ID == d.id {
			recs[i].Message = nil
		}
	}
	return recs, err
}

// TestDialectRowWithoutMessage: a row a Dialect returns without its
// Message (its key unknown) is not published, nor are the later rows of
// its partition, which hold every row of its key; the relay goes on with
// the other partitions instead of crashing.
func TestDialectRowWithoutMessage(t *testing.T) {
	e := newEnv(t)
	c, col := poisonBroker(t, "nomsg")
	bad := e.enqueue(t, "nomsg", true, &messaging.Message{Key: "bad"})
	later := e.enqueue(t, "nomsg", true, &messaging.Message{Key: "bad"})
	e.enqueue(t, "nomsg", true, keyed("k", 50)...)
	e.ob = mwtest.Must(outbox.New(nilMessageDialect{e.ob.Dialect(), bad[0]}))
	want := e.msgIDs(t, `WHERE part <> (SELECT part FROM `+e.schema+`.messaging_outbox WHERE msg_id = $1)`, bad[0])
	if len(want) < 20 {
		t.Fatalf("only %d messages outside the row's partition; the test needs more", len(want))
	}
	e.startRelay(t, c, outbox.WithBatchSize(10))
	if !col.Wait(20*time.Second, func(col *integration.Collector) bool { return len(col.Missing(want)) == 0 }) {
		t.Fatalf("%d of %d messages of other partitions not delivered within 20s", len(col.Missing(want)), len(want))
	}
	for _, id := range append(bad, later...) {
		if col.Count(id) > 0 {
			t.Errorf("message %s of the row's partition was delivered", id)
		}
	}
}
