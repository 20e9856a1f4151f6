package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// member counts what one group member handled, per partition.
type member struct {
	mu    sync.Mutex
	parts map[string]int // partition -> deliveries
	total int
}

func (m *member) handler(col *integration.Collector) messaging.Handler {
	return func(_ context.Context, msg *messaging.Message) error {
		p, _, _ := strings.Cut(msg.Offset, ":")
		m.mu.Lock()
		if m.parts == nil {
			m.parts = map[string]int{}
		}
		m.parts[p]++
		m.total++
		m.mu.Unlock()
		col.Add(msg)
		return nil
	}
}

func (m *member) snapshot() (int, map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := make(map[string]int, len(m.parts))
	for k, v := range m.parts {
		cp[k] = v
	}
	return m.total, cp
}

// TestGroupRebalance: members join and leave a group while messages flow;
// partitions move between them (each member's share is observed), and every
// confirmed message is delivered (duplicates reported, none lost).
func TestGroupRebalance(t *testing.T) {
	const partitions = 4
	pub := kafkatest.Open(t, "partitions="+strconv.Itoa(partitions))
	topic := integration.UniqueName(t, "rebal")
	group := integration.UniqueName(t, "g")
	ctx := t.Context()
	if err := pub.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pub.DeleteTopic(ctx, topic); err != nil {
			t.Logf("delete topic: %v", err)
		}
	})

	col := integration.NewCollector()
	var (
		published []string
		seq       atomic.Int64
	)
	publish := func() {
		msgs := make([]*messaging.Message, 40)
		for i := range msgs {
			n := seq.Add(1)
			msgs[i] = &messaging.Message{Key: "k" + strconv.FormatInt(n, 10), Payload: []byte(strconv.FormatInt(n, 10))}
		}
		if err := pub.Publish(ctx, topic, msgs...); err != nil {
			t.Fatalf("publish: %v", err)
		}
		for _, m := range msgs {
			published = append(published, m.ID)
		}
	}
	// publishUntil publishes batches until cond holds, waiting on the
	// collector's delivery signal between batches.
	publishUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			publish()
			col.Wait(500*time.Millisecond, func(*integration.Collector) bool { return cond() })
		}
	}
	join := func(name string, m *member) messaging.Subscription {
		c := kafkatest.Open(t)
		sub, err := c.Subscribe(ctx, topic, m.handler(col), messaging.Group(group), messaging.Concurrency(3))
		if err != nil {
			t.Fatalf("%s subscribe: %v", name, err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		return sub
	}

	var a, b, c member
	subA := join("A", &a)
	publishUntil("A handles messages", func() bool { n, _ := a.snapshot(); return n > 0 })

	join("B", &b)
	publishUntil("B gets a share", func() bool { n, _ := b.snapshot(); return n > 0 })

	start := time.Now()
	if err := subA.Close(); err != nil {
		t.Fatalf("A close: %v", err)
	}
	t.Logf("A left after handling %d messages (close took %v)", func() int { n, _ := a.snapshot(); return n }(), time.Since(start))
	_, bBefore := b.snapshot()
	publishUntil("B takes over every partition", func() bool {
		_, now := b.snapshot()
		for p := range partitions {
			if now[strconv.Itoa(p)] <= bBefore[strconv.Itoa(p)] {
				return false
			}
		}
		return true
	})

	join("C", &c)
	publishUntil("C gets a share", func() bool { n, _ := c.snapshot(); return n > 0 })
	publish()

	col.WaitDistinct(t, len(published), 60*time.Second)
	dups := col.Report(t, published)
	for name, m := range map[string]*member{"A": &a, "B": &b, "C": &c} {
		n, parts := m.snapshot()
		t.Logf("member %s handled %d messages, per partition %v", name, n, parts)
	}
	t.Logf("%d duplicates across %d rebalances", dups, 3)
}

// privateURL is the URL of a private cluster's test clients: quick
// sessions and commits.
func privateURL(k *kafkatest.Cluster) string {
	return "kafka://" + k.Brokers() + "?partitions=3&heartbeat_interval=200ms&session_timeout=2s&commit_interval=50ms&join_backoff=200ms"
}

// openURL opens a client (closed by the caller or, with closeAtEnd, when
// the test ends).
func openURL(t *testing.T, url string, closeAtEnd bool) *kafka.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kafka.Open(ctx, url)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if closeAtEnd {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c
}

// TestCrashRestart: a consumer dies in the middle of a batch together with
// the broker; the cluster restarts from its data directory on the same
// ports; a new consumer of the group finishes the work. Every confirmed
// message is delivered; what was handled but not committed comes again.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private cluster")
	}
	const n = 2000
	k := kafkatest.StartCluster(t, 1)
	url := privateURL(k)
	topic := integration.UniqueName(t, "crash")
	group := integration.UniqueName(t, "g")
	open := func() *kafka.Client { return openURL(t, url, false) }
	pub := open()
	if err := pub.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	var published []string
	for b := 0; b < n/100; b++ {
		msgs := make([]*messaging.Message, 100)
		for i := range msgs {
			msgs[i] = &messaging.Message{Key: strconv.Itoa(b*100 + i), Payload: []byte("x")}
		}
		if err := pub.Publish(t.Context(), topic, msgs...); err != nil {
			t.Fatalf("publish: %v", err)
		}
		for _, m := range msgs {
			published = append(published, m.ID)
		}
	}
	_ = pub.Close()

	// First consumer: handles about half, then its handlers hang mid-batch
	// (concurrency 4, so several messages are in flight) as a crashed
	// process's would.
	col := integration.NewCollector()
	var handled atomic.Int64
	hung := make(chan struct{})
	var hangOnce sync.Once
	consumerCtx, kill := context.WithCancel(t.Context())
	c1 := open()
	_, err := c1.Subscribe(consumerCtx, topic, func(ctx context.Context, m *messaging.Message) error {
		if handled.Add(1) > n/2 {
			hangOnce.Do(func() { close(hung) })
			<-ctx.Done()
			return ctx.Err()
		}
		col.Add(m)
		return nil
	}, messaging.Group(group), messaging.Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hung:
	case <-time.After(60 * time.Second):
		t.Fatalf("first consumer handled only %d messages", handled.Load())
	}
	// Let the periodic commit record progress first (the broker's state is
	// the signal), so the restart has something to resume from.
	committed := waitCommitted(t, k.Brokers(), topic, group, 3, n/4)
	// The broker goes down with the consumer in the middle of its batch:
	// nothing the consumer does from here on reaches the cluster.
	k.Kill()
	kill()
	_ = c1.Close()
	handledBefore := col.Distinct()
	t.Logf("first consumer handled %d messages before the crash; %d offsets committed", handledBefore, committed)

	k.Start()
	c2 := open()
	sub, err := c2.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c2.DeleteTopic(ctx, topic); err != nil {
			t.Logf("delete topic: %v", err)
		}
		_ = c2.Close()
	})
	col.WaitDistinct(t, n, 60*time.Second)
	dups := col.Report(t, published)
	// Everything below the committed offsets was handled before the crash,
	// so only handled messages at or above them may come again.
	if limit := handledBefore - committed; dups > limit {
		t.Errorf("%d duplicates, but only %d handled messages were above the %d committed offsets: the restarted group did not resume from its commits", dups, limit, committed)
	}
}

// waitCommitted polls the group's committed offsets on the broker until
// they add up to at least min, and returns the sum.
func waitCommitted(t *testing.T, brokers, topic, group string, partitions, min int) int {
	t.Helper()
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(brokers, ",")...), Timeout: 5 * time.Second}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := admin.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
		sum := 0
		if err == nil {
			for _, p := range resp.Topics[topic] {
				sum += int(max(p.CommittedOffset, 0))
			}
		}
		if sum >= min {
			return sum
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets add up to %d after 30s (err %v), want >= %d", sum, err, min)
		}
		time.Sleep(20 * time.Millisecond) // polling the broker's state: there is no push signal for commits
	}
}

// TestNackHoldsCommit: a message that keeps failing holds its partition's
// committed offset while later messages are handled; after the member goes
// away the group gets it again (from that offset), so a failure is never
// skipped silently.
func TestNackHoldsCommit(t *testing.T) {
	c := kafkatest.Open(t)
	topic := integration.UniqueName(t, "hold")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.DeleteTopic(ctx, topic)
	})
	msgs := make([]*messaging.Message, 10)
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: "m" + strconv.Itoa(i)}
	}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	col := integration.NewCollector()
	var failures atomic.Int64
	fifth := make(chan struct{})
	ctx, stop := context.WithCancel(t.Context())
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		if m.ID == "m3" {
			if failures.Add(1) == 5 {
				close(fifth)
			}
			return messaging.RetryAfter(fmt.Errorf("attempt %d fails", m.Attempt), 20*time.Millisecond)
		}
		col.Add(m)
		return nil
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 9, 30*time.Second)
	port := strings.Split(kafkatest.Broker.Endpoint(t), ",")
	admin := &kafkago.Client{Addr: kafkago.TCP(port...), Timeout: 10 * time.Second}
	committed := func() int64 {
		resp, err := admin.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
		if err != nil || len(resp.Topics[topic]) != 1 {
			t.Fatalf("offset fetch: %v %+v", err, resp)
		}
		return resp.Topics[topic][0].CommittedOffset
	}
	select {
	case <-fifth:
	case <-time.After(30 * time.Second):
		t.Fatalf("m3 was delivered %d times, want redeliveries", failures.Load())
	}
	// Periodic commits and the final one on close ran after the later
	// messages were handled: the committed offset sits at the failing
	// message, not past it.
	stop()
	<-sub.Done()
	if off := committed(); off != 3 {
		t.Fatalf("committed offset %d after m3 kept failing, want 3", off)
	}

	ch := make(chan *messaging.Message, 10)
	sub2, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		ch <- m
		return nil
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	select {
	case m := <-ch:
		if m.ID != "m3" || m.Attempt != 1 {
			t.Fatalf("next member got %s (attempt %d) first, want m3 (attempt 1: counted in process)", m.ID, m.Attempt)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the failed message never came back to the group")
	}
}

// TestPublishAcrossRestart: Publish runs on while the broker goes down and
// comes back from its data directory. Every message Publish confirmed is
// delivered afterwards; the ones it reported failed may or may not be
// (counted); none is lost silently.
func TestPublishAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private cluster")
	}
	k := kafkatest.StartCluster(t, 1)
	url := privateURL(k)
	topic, group := integration.UniqueName(t, "restart"), integration.UniqueName(t, "g")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pub, err := kafka.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}

	var (
		mu                sync.Mutex
		confirmed, failed []string
		confirmedCount    atomic.Int64
		failures          atomic.Int64
		firstFailure      error
		stop              = make(chan struct{})
		publisherDone     = make(chan struct{})
		progress          = make(chan struct{}, 1)
	)
	go func() {
		defer close(publisherDone)
		for seq := 0; ; {
			select {
			case <-stop:
				return
			default:
			}
			msgs := make([]*messaging.Message, 50)
			for i := range msgs {
				seq++
				msgs[i] = &messaging.Message{Key: strconv.Itoa(seq % 7), Payload: []byte(strconv.Itoa(seq))}
			}
			callCtx, callCancel := context.WithTimeout(t.Context(), 2*time.Second)
			err := pub.Publish(callCtx, topic, msgs...)
			callCancel()
			var pe *messaging.PublishError
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("publish: %v, want nil or a *messaging.PublishError", err)
				return
			}
			mu.Lock()
			for i, m := range msgs {
				if pe != nil && pe.Errs[i] != nil {
					if firstFailure == nil {
						firstFailure = pe.Errs[i]
					}
					failed = append(failed, m.ID)
					failures.Add(1)
				} else {
					confirmed = append(confirmed, m.ID)
					confirmedCount.Add(1)
				}
			}
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for !cond() {
			select {
			case <-progress:
			case <-deadline:
				t.Fatalf("timed out waiting until %s (%d confirmed, %d failed)", what, confirmedCount.Load(), failures.Load())
			}
		}
	}
	waitFor("1,000 messages are confirmed", func() bool { return confirmedCount.Load() >= 1000 })
	k.Kill()
	waitFor("a publish fails while the broker is down", func() bool { return failures.Load() > 0 })
	before := confirmedCount.Load()
	k.Start()
	waitFor("1,000 more are confirmed after the restart", func() bool { return confirmedCount.Load() >= before+1000 })
	// A short outage: requests to the stopped broker are retried until it is
	// back (or the call's 2s run out).
	k.Kill()
	k.Start()
	before = confirmedCount.Load()
	waitFor("1,000 more are confirmed after a second restart", func() bool { return confirmedCount.Load() >= before+1000 })
	close(stop)
	<-publisherDone
	_ = pub.Close()

	col := integration.NewCollector()
	sub2, err := kafka.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub2.Close() })
	sub, err := sub2.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	mu.Lock()
	defer mu.Unlock()
	if !col.Wait(60*time.Second, func(c *integration.Collector) bool { return len(c.Missing(confirmed)) == 0 }) {
		t.Fatalf("%d of %d confirmed messages never delivered after the restart", len(col.Missing(confirmed)), len(confirmed))
	}
	col.Report(t, confirmed)
	written := len(failed) - len(col.Missing(failed))
	t.Logf("%d confirmed (all delivered), %d reported failed during the outages (first: %v), of which %d were written anyway", len(confirmed), len(failed), firstFailure, written)
}
