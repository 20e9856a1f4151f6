package redistest_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

func subscribeBatch(t *testing.T, c *redisadapter.Client, topic string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) messaging.Subscription {
	t.Helper()
	sub, err := c.SubscribeBatch(t.Context(), topic, h, opts...)
	if err != nil {
		t.Fatalf("SubscribeBatch: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// seenBatch is what a batch handler was called with.
type seenBatch struct {
	ids      []string
	attempts []int
}

func record(msgs []*messaging.Message) seenBatch {
	var b seenBatch
	for _, m := range msgs {
		b.ids = append(b.ids, m.ID)
		b.attempts = append(b.attempts, m.Attempt)
	}
	return b
}

func publishN(t *testing.T, c *redisadapter.Client, topic, prefix string, n int) []string {
	t.Helper()
	msgs := make([]*messaging.Message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		msgs[i] = &messaging.Message{ID: ids[i]}
	}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

func nextBatch(t *testing.T, ch <-chan seenBatch, what string) seenBatch {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(30 * time.Second):
		t.Fatalf("no batch: %s", what)
	}
	return seenBatch{}
}

// The entries of a batch whose consumer crashed are reclaimed after the ack
// deadline by another member and come to it as a batch, with Attempt 2.
func TestBatchReclaimsCrashedConsumer(t *testing.T) {
	const n, ack = 5, 500 * time.Millisecond
	dead := redistest.Open(t)
	topic := topicFor(t, dead, "batchcrash")
	group := integration.UniqueName(t, "g")
	if err := dead.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	ids := publishN(t, dead, topic, "c", n)
	started := make(chan seenBatch, 1)
	subscribeBatch(t, dead, topic, func(ctx context.Context, msgs []*messaging.Message) []error {
		started <- record(msgs)
		<-ctx.Done() // hangs until the test ends
		return nil
	}, messaging.Group(group), messaging.BatchSize(10), messaging.AckDeadline(ack))
	if b := nextBatch(t, started, "the first consumer got nothing"); !slices.Equal(b.ids, ids) {
		t.Fatalf("first consumer's batch %v, want %v", b.ids, ids)
	}
	redistest.Kill(t, dead)

	live := redistest.Open(t)
	got := make(chan seenBatch, n)
	subscribeBatch(t, live, topic, func(_ context.Context, msgs []*messaging.Message) []error {
		got <- record(msgs)
		return nil
	}, messaging.Group(group), messaging.BatchSize(10), messaging.AckDeadline(ack))
	b := nextBatch(t, got, "the crashed consumer's entries were not reclaimed")
	if !slices.Equal(b.ids, ids) {
		t.Fatalf("reclaimed batch %v, want all of %v in one batch", b.ids, ids)
	}
	for i, a := range b.attempts {
		if a != 2 {
			t.Errorf("%s reclaimed with Attempt %d, want 2", b.ids[i], a)
		}
	}
}

// A batch handler that panics fails every message of the batch: all of
// them are redelivered, with Attempt 2, and nothing is acknowledged.
func TestBatchPanicRedeliversAll(t *testing.T) {
	const n = 4
	c := redistest.Open(t)
	topic := topicFor(t, c, "batchpanic")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	ids := publishN(t, c, topic, "p", n)
	got := make(chan seenBatch, 4*n)
	subscribeBatch(t, c, topic, func(_ context.Context, msgs []*messaging.Message) []error {
		got <- record(msgs)
		if msgs[0].Attempt == 1 {
			panic("batch handler failure")
		}
		return nil
	}, messaging.Group(group), messaging.BatchSize(n), messaging.AckDeadline(500*time.Millisecond))
	first := nextBatch(t, got, "nothing delivered")
	if !slices.Equal(first.ids, ids) || slices.ContainsFunc(first.attempts, func(a int) bool { return a != 1 }) {
		t.Fatalf("first batch %v attempts %v, want %v with Attempt 1", first.ids, first.attempts, ids)
	}
	var again []string
	for len(again) < n {
		b := nextBatch(t, got, fmt.Sprintf("redelivered only %v after the panic", again))
		for i, id := range b.ids {
			if b.attempts[i] != 2 {
				t.Errorf("%s redelivered with Attempt %d, want 2", id, b.attempts[i])
			}
		}
		again = append(again, b.ids...)
	}
	slices.Sort(again)
	if !slices.Equal(again, ids) {
		t.Fatalf("redelivered %v, want each of %v once", again, ids)
	}
}

// The ack deadline of every message of a running batch is extended: a batch
// handler running for several ack deadlines keeps its messages, another
// member of the group never gets them, and nothing stays pending after it
// returned. Elapsed time is the subject here.
//
// The other member reclaims with a shorter ack deadline (600ms, checked
// every 150ms) than the batch's subscription (900ms, extended every 300ms):
// without the extension it takes the entries once they are idle 600ms,
// before the batch's own subscription would re-claim them itself at 900ms
// (which also keeps them from others); with it they are never idle that
// long.
func TestBatchDeadlineExtended(t *testing.T) {
	const n, ack, otherAck = 3, 900 * time.Millisecond, 600 * time.Millisecond
	a, b := redistest.Open(t), redistest.Open(t)
	topic := topicFor(t, a, "batchslow")
	group := integration.UniqueName(t, "g")
	if err := a.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	ids := publishN(t, a, topic, "s", n)
	started := make(chan seenBatch, 1)
	release := make(chan struct{})
	done := make(chan struct{})
	subA := subscribeBatch(t, a, topic, func(_ context.Context, msgs []*messaging.Message) []error {
		started <- record(msgs)
		<-release
		close(done)
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ack))
	if got := nextBatch(t, started, "nothing delivered"); !slices.Equal(got.ids, ids) {
		t.Fatalf("batch %v, want %v", got.ids, ids)
	}
	stolen := make(chan string, n)
	subscribe(t, b, t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		stolen <- m.ID
		return nil
	}, messaging.Group(group), messaging.AckDeadline(otherAck))
	select {
	case id := <-stolen:
		t.Fatalf("%s was taken by another member while its batch was running", id)
	case <-time.After(3 * ack):
	}
	close(release)
	<-done
	if err := subA.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := a.Redis().XPending(t.Context(), a.StreamKey(topic), group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 0 {
		t.Fatalf("%d entries pending after the batch returned and its subscription closed, want 0", p.Count)
	}
	select {
	case id := <-stolen:
		t.Fatalf("%s was redelivered to another member", id)
	default:
	}
}

// An idle batch subscription does not turn a short BatchWait into a busy
// loop: while the stream is empty each read blocks for the block time.
func TestBatchIdleReads(t *testing.T) {
	// Redis times blocked reads out at its hz (10 per second by
	// default), so a busy loop of 1ms blocks shows as about 10 reads a
	// second at least; the block time is well above that.
	const block = 500 * time.Millisecond
	c := redistest.Open(t, redisadapter.WithBlock(block))
	topic := topicFor(t, c, "batchidle")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	reads := countReads(c)
	sub, err := c.SubscribeBatch(t.Context(), topic, func(context.Context, []*messaging.Message) []error { return nil },
		messaging.Group(group), messaging.BatchWait(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * block) // idle time is the subject
	start := time.Now()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > block+time.Second {
		t.Errorf("Close of an idle batch subscription took %v, want about the block time %v at most", d, block)
	}
	// 5 block times: about 6 reads; a busy loop on BatchWait makes
	// hundreds.
	if calls := reads.Load(); calls > 12 {
		t.Errorf("%d XREADGROUP calls in %v of idleness, want about %d", calls, 5*block, 6)
	}
}

// countReads counts the XREADGROUP commands c sends from now on.
func countReads(c *redisadapter.Client) *atomic.Int64 {
	var n atomic.Int64
	c.Redis().AddHook(readCounter{&n})
	return &n
}

type readCounter struct{ n *atomic.Int64 }

func (readCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h readCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() == "xreadgroup" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (readCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// Without a Group option SubscribeBatch reads with XREAD from Latest, and a
// failed message is redelivered in process, in a later batch, with Attempt 2.
func TestBatchEphemeral(t *testing.T) {
	const n = 5
	c := redistest.Open(t)
	topic := topicFor(t, c, "batcheph")
	got := make(chan seenBatch, 4*n)
	subscribeBatch(t, c, topic, func(_ context.Context, msgs []*messaging.Message) []error {
		got <- record(msgs)
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			if m.ID == "e-0" && m.Attempt == 1 {
				errs[i] = fmt.Errorf("fail once")
			}
		}
		return errs
	}, messaging.BatchSize(10))
	ids := publishN(t, c, topic, "e", n)
	var all []string
	var e0 []int // attempts e-0 was delivered with
	for len(all) < n+1 {
		b := nextBatch(t, got, fmt.Sprintf("only %v delivered", all))
		if len(b.ids) > 10 {
			t.Fatalf("batch of %d, BatchSize 10", len(b.ids))
		}
		for i, id := range b.ids {
			if id == "e-0" {
				e0 = append(e0, b.attempts[i])
			}
			all = append(all, id)
		}
	}
	slices.Sort(all)
	if want := append([]string{"e-0"}, ids...); !slices.Equal(all, want) || !slices.Equal(e0, []int{1, 2}) {
		t.Fatalf("deliveries %v (e-0 with attempts %v), want %v (e-0 with attempts 1 then 2)", all, e0, want)
	}
}

// A batch subscription's read of new entries outlives the fetch that the
// engine ends when a batch is due (BatchWait): what Redis serves to it is
// handed to a later batch, in order and as a first delivery, not lost or
// released. Messages published one by one, each after the last batch,
// reach the handler promptly.
func TestBatchKeepsReadAcrossBatches(t *testing.T) {
	const msgs, within = 8, 500 * time.Millisecond
	c := redistest.Open(t)
	topic := topicFor(t, c, "batchkeep")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	got := make(chan seenBatch, msgs)
	subscribeBatch(t, c, topic, func(_ context.Context, ms []*messaging.Message) []error {
		got <- record(ms)
		return nil
	}, messaging.Group(group), messaging.BatchSize(10), messaging.BatchWait(20*time.Millisecond))
	var seen []string
	for i := range msgs {
		id := fmt.Sprint("k", i)
		sent := time.Now()
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: id}); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if took := time.Since(sent); took > within {
				t.Errorf("%s handled %v after its publish, want within %v", id, took, within)
			}
			seen = append(seen, b.ids...)
			if slices.Contains(b.attempts, 2) {
				t.Errorf("batch %v has attempts %v, want first deliveries", b.ids, b.attempts)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not handled within 5s", id)
		}
	}
	want := make([]string, msgs)
	for i := range want {
		want[i] = fmt.Sprint("k", i)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("handled %v, want %v", seen, want)
	}
}
