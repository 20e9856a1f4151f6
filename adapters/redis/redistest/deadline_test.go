package redistest_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// These tests check that a message's unavailable deadline runs from when
// it was queued (PublishAsync) or its call began (Publish), also when it
// waits behind batches or pipelines to a server that cannot be reached: it
// used to run from when its own batch was sent, so a message queued behind
// two batches failed after about three times unavailable_timeout, and
// Close waited for the batch in flight as long. And that it is never
// sooner than unavailable_timeout after the last acknowledged publish, so
// that messages queued behind a slow but answering server still succeed.

// deadlineTimeout is the tests' unavailable_timeout.
const deadlineTimeout = time.Second

// deadlineSlack is how much later than its unavailable timeout a message
// may fail: timers, backoff and scheduling on a loaded machine. A message
// queued behind a batch, when its deadline ran from its own batch, took a
// whole timeout more.
const deadlineSlack = 400 * time.Millisecond

// asyncResult is the results one PublishAsync message got, and how long
// after it was queued the first came.
type asyncResult struct {
	errs []error
	took time.Duration
}

// asyncRun is the results of publishAsyncN's messages, filled as they come
// (read them under mu).
type asyncRun struct {
	mu      sync.Mutex
	results []asyncResult
	first   chan struct{} // closed at the first result
	last    time.Time     // when the last message was queued
}

// publishAsyncN queues n messages, all with one key (one lane, so at least
// n/1000 batches one after the other).
func publishAsyncN(c *redisadapter.Client, topic string, n int) *asyncRun {
	r := &asyncRun{results: make([]asyncResult, n), first: make(chan struct{})}
	var firstOnce sync.Once
	for i := range n {
		begin := time.Now()
		c.PublishAsync(context.Background(), topic, &messaging.Message{Key: "k", Payload: []byte("x")}, func(_ *messaging.Message, err error) {
			r.mu.Lock()
			if len(r.results[i].errs) == 0 {
				r.results[i].took = time.Since(begin)
			}
			r.results[i].errs = append(r.results[i].errs, err)
			r.mu.Unlock()
			firstOnce.Do(func() { close(r.first) })
		})
		r.last = time.Now()
	}
	return r
}

// checkAsyncResults fails the test unless every message got exactly one
// result, allowed by ok, and, when bounded, within the unavailable timeout
// and deadlineSlack of when it was queued.
func checkAsyncResults(t *testing.T, run *asyncRun, ok func(error) bool, bounded bool) {
	t.Helper()
	run.mu.Lock()
	defer run.mu.Unlock()
	results := run.results
	var latest time.Duration
	bad := 0
	for i, r := range results {
		if len(r.errs) != 1 || !ok(r.errs[0]) {
			if bad++; bad <= 5 {
				t.Errorf("message %d: results %v, want one", i, r.errs)
			}
			continue
		}
		latest = max(latest, r.took)
		if bounded && r.took > deadlineTimeout+deadlineSlack {
			if bad++; bad <= 5 {
				t.Errorf("message %d failed %v after it was queued, want within about the %v unavailable timeout: %v", i, r.took, deadlineTimeout, r.errs[0])
			}
		}
	}
	t.Logf("%d messages, the last result %v after its message was queued, first: %v", len(results), latest.Round(time.Millisecond), results[0].errs)
	if bad > 5 {
		t.Errorf("... %d messages in all", bad)
	}
}

func isUnavailable(err error) bool { return errors.Is(err, messaging.ErrUnavailable) }

func isUnavailableOrClosed(err error) bool {
	return errors.Is(err, messaging.ErrUnavailable) || errors.Is(err, messaging.ErrClosed)
}

// killedServer returns a client (options opts and unavailable_timeout
// deadlineTimeout) of a private server that published one message and was
// then killed: connections are refused.
func killedServer(t *testing.T, opts ...redisadapter.Option) *redisadapter.Client {
	t.Helper()
	srv := redistest.StartServer(t)
	c, err := redisadapter.Open(t.Context(), srv.URL(), append(opts, redisadapter.WithUnavailableTimeout(deadlineTimeout))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Publish(t.Context(), "t", messaging.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	return c
}

// TestPublishAsyncQueuedUnavailable: with the server killed, 2500
// PublishAsync messages of one key (three batches or more, one after the
// other) each fail with messaging.ErrUnavailable about unavailable_timeout
// after they were queued, directly and through coalesced pipelines.
func TestPublishAsyncQueuedUnavailable(t *testing.T) {
	for name, opts := range map[string][]redisadapter.Option{
		"direct":     nil,
		"coalesce=1": {redisadapter.WithCoalescing(1)},
	} {
		t.Run(name, func(t *testing.T) {
			c := killedServer(t, opts...)
			run := publishAsyncN(c, "t", 2500)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			checkAsyncResults(t, run, isUnavailable, true)
		})
	}
}

// TestCloseWhilePublishAsyncQueuedUnavailable: Close while the second
// batch of PublishAsync messages to a killed server is being sent (its
// messages queued with the first) returns about unavailable_timeout after
// the last message was queued; every message gets one result
// (ErrUnavailable, or ErrClosed for those still queued).
func TestCloseWhilePublishAsyncQueuedUnavailable(t *testing.T) {
	h := &xaddHook{sent: make(chan int, 1)}
	c, srv := hooked(t, h, false)
	srv.Kill()
	run := publishAsyncN(c, "t", 2500)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		_ = c.Flush(context.Background())
	}()
	select { // the first batch is over
	case <-run.first:
	case <-time.After(30 * time.Second):
		t.Fatal("no result 30s after the messages were queued")
	}
	select { // forget the first batch's pipelines
	case <-h.sent:
	default:
	}
	select { // the next batch is being sent, or (no longer sent once its messages' deadline passed) every message has its result
	case <-h.sent:
	case <-flushed:
	case <-time.After(30 * time.Second):
		t.Fatal("no second batch nor every result 30s after the messages were queued")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(run.last)
	t.Logf("Close returned %v after the last message was queued", took.Round(time.Millisecond))
	if took > deadlineTimeout+deadlineSlack {
		t.Errorf("Close returned %v after the last message was queued, want within about the %v unavailable timeout", took, deadlineTimeout)
	}
	<-flushed
	checkAsyncResults(t, run, isUnavailableOrClosed, true)
}

// hooked returns a client (coalescing with one goroutine when coalesce,
// unavailable_timeout deadlineTimeout) of a private server through a
// go-redis client whose XADDs go through h, and the server.
func hooked(t *testing.T, h goredis.Hook, coalesce bool) (*redisadapter.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.StartServer(t)
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	rc.AddHook(h)
	opts := []redisadapter.Option{redisadapter.WithUnavailableTimeout(deadlineTimeout), redisadapter.WithCloseClient(true)}
	if coalesce {
		opts = append(opts, redisadapter.WithCoalescing(1))
	}
	c, err := redisadapter.New(rc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, srv
}

// xaddHook signals on sent each time a pipeline of XADDs is sent and, with
// a delay set, delays its replies by that much: a slow server.
type xaddHook struct {
	sent  chan int // the XADDs of each pipeline, when there is room
	delay atomic.Int64
}

func (h *xaddHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *xaddHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		return h.ProcessPipelineHook(func(ctx context.Context, _ []goredis.Cmder) error {
			return next(ctx, cmd)
		})(ctx, []goredis.Cmder{cmd})
	}
}

func (h *xaddHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "xadd" {
			return next(ctx, cmds)
		}
		select {
		case h.sent <- len(cmds):
		default:
		}
		err := next(ctx, cmds)
		time.Sleep(time.Duration(h.delay.Load())) // the server's latency is the subject
		return err
	}
}

// TestCoalescedCloseWhileUnavailable: with coalescing, Close while calls
// wait for a pipeline to a killed server returns about unavailable_timeout
// after the last call began (the pipeline in flight used to go on for a
// minute, or as long as go-redis retried), and each call fails with
// ErrUnavailable or ErrClosed within about unavailable_timeout.
func TestCoalescedCloseWhileUnavailable(t *testing.T) {
	h := &xaddHook{sent: make(chan int, 1)}
	c, srv := hooked(t, h, true)
	srv.Kill()
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, 5)
	var last time.Time
	for range cap(results) {
		begin := time.Now()
		last = begin
		go func() {
			err := c.Publish(context.Background(), "t", messaging.NewMessage(nil), messaging.NewMessage(nil))
			results <- result{err, time.Since(begin)}
		}()
	}
	select { // a pipeline is in flight
	case <-h.sent:
	case <-time.After(30 * time.Second):
		t.Fatal("no pipeline sent")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(last)
	t.Logf("Close returned %v after the last call began", took.Round(time.Millisecond))
	if took > deadlineTimeout+deadlineSlack {
		t.Errorf("Close returned %v after the last call began, want within about the %v unavailable timeout", took, deadlineTimeout)
	}
	for i := range cap(results) {
		r := <-results
		t.Logf("call %d: %v after it began: %v", i, r.took.Round(time.Millisecond), r.err)
		if !isUnavailableOrClosed(r.err) {
			t.Errorf("call: %v, want ErrUnavailable or ErrClosed", r.err)
		}
		if r.took > deadlineTimeout+deadlineSlack {
			t.Errorf("call failed %v after it began, want within about the %v unavailable timeout", r.took, deadlineTimeout)
		}
	}
}

// slowDelay is the slow server's reply latency in the tests below: well
// under the unavailable timeout, but messages queued behind two such
// round trips wait longer than it.
const slowDelay = 600 * time.Millisecond

// TestPublishAsyncQueuedBehindSlowServer: PublishAsync messages queued
// behind batches to a server that answers each after 600ms (under the 1s
// unavailable_timeout, but three or more batches one after the other)
// all succeed, each once: a deadline is never sooner than the timeout
// after the last reply.
func TestPublishAsyncQueuedBehindSlowServer(t *testing.T) {
	h := &xaddHook{sent: make(chan int, 1)}
	h.delay.Store(int64(slowDelay))
	c, _ := hooked(t, h, false)
	topic := integration.UniqueName(t, "slow")
	const n = 3000
	run := publishAsyncN(c, topic, n)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	checkAsyncResults(t, run, func(err error) bool { return err == nil }, false)
	checkLen(t, c, topic, n)
}

// TestCoalescedPublishBehindSlowServer: with coalescing, Publish calls
// waiting behind a pipeline to a server that answers after 600ms, whose
// own pipeline then takes 600ms more (longer than the 1s
// unavailable_timeout in all), succeed, each message written once.
func TestCoalescedPublishBehindSlowServer(t *testing.T) {
	h := &xaddHook{sent: make(chan int, 1)}
	h.delay.Store(int64(slowDelay))
	c, _ := hooked(t, h, true)
	topic := integration.UniqueName(t, "slow")
	errs := make(chan error, 4)
	publish := func() {
		go func() {
			begin := time.Now()
			err := c.Publish(context.Background(), topic, messaging.NewMessage(nil))
			t.Logf("Publish: %v after it began: %v", time.Since(begin).Round(time.Millisecond), err)
			errs <- err
		}()
	}
	publish()
	select { // the first pipeline is in flight: the others queue behind it
	case <-h.sent:
	case <-time.After(30 * time.Second):
		t.Fatal("no pipeline sent")
	}
	for range cap(errs) - 1 {
		publish()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Publish behind a slow server: %v", err)
		}
	}
	checkLen(t, c, topic, cap(errs))
}

// checkLen fails the test unless topic's stream holds n entries (none
// lost, none written twice), and deletes it.
func checkLen(t *testing.T, c *redisadapter.Client, topic string, n int) {
	t.Helper()
	key := c.StreamKey(topic)
	got, err := c.Redis().XLen(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got != int64(n) {
		t.Errorf("stream holds %d entries, want %d", got, n)
	}
	_ = c.Redis().Del(t.Context(), key).Err()
}

// TestClusterDeadShardUnavailable: on a cluster, a Publish to a stream
// whose shard is down fails on time although the other shards go on
// acknowledging: their answers say nothing of the dead one's, and counting
// them (the client's last acknowledged publish, which keeps the messages
// queued behind a slow server waiting) held the Publish until the whole
// cluster failed.
func TestClusterDeadShardUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cl := redistest.StartCluster(t, 3, 0)
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{cl.Nodes[0].Addr(), cl.Nodes[1].Addr(), cl.Nodes[2].Addr()}})
	t.Cleanup(func() { _ = cc.Close() })
	c := mustNew(t, cc, redisadapter.WithUnavailableTimeout(deadlineTimeout))
	// Two topics on two shards.
	dead, alive := integration.UniqueName(t, "dead"), ""
	deadNode := cl.MasterOf(cl.Nodes[0], c.StreamKey(dead))
	if deadNode == nil {
		t.Fatal("no master for the dead topic's slot")
	}
	for i := 0; alive == ""; i++ {
		name := integration.UniqueName(t, "alive") + string(rune('a'+i%26))
		if n := cl.MasterOf(cl.Nodes[0], c.StreamKey(name)); n != nil && n != deadNode {
			alive = name
		}
	}
	for _, topic := range []string{dead, alive} {
		if err := c.Publish(t.Context(), topic, &messaging.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	deadNode.Kill()
	// The living shard answers until the cluster sees the node fail
	// (RedisClusterNodeTimeout, 2s), then refuses too (CLUSTERDOWN).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c.Publish(t.Context(), alive, &messaging.Message{}) == nil {
				acked.Add(1)
			}
		}
	})
	begin := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := c.Publish(ctx, dead, &messaging.Message{})
	took := time.Since(begin)
	close(stop)
	wg.Wait()
	t.Logf("Publish to the dead shard: %v after %v; %d publishes to the living one acknowledged meanwhile", err, took.Round(time.Millisecond), acked.Load())
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Errorf("Publish to the dead shard: %v, want messaging.ErrUnavailable", err)
	}
	if took > deadlineTimeout+deadlineSlack {
		t.Errorf("Publish to the dead shard failed after %v, want about the %v unavailable timeout", took, deadlineTimeout)
	}
	if acked.Load() == 0 {
		t.Error("no publish to the living shard was acknowledged meanwhile: the test did not exercise other shards' answers")
	}
}
