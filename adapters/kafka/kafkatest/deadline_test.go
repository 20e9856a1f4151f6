package kafkatest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/internal/producer"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// These tests check that a record's unavailable deadline runs from when its
// call entered, also when it waits behind a request to a broker that never
// answers: a call used to start its deadline only when its own request
// started, so a call queued behind another failed after up to twice the
// unavailable timeout (and Close waited as long).

// deadlineSlack is how much later than its unavailable timeout a call may
// fail: timers and scheduling on a loaded machine. A call queued behind a
// request, when the deadline ran from its own request, took a whole
// timeout more.
const deadlineSlack = 400 * time.Millisecond

// timedResult is a call's result and how long after its start it came.
type timedResult struct {
	err  error
	took time.Duration
}

// checkUnavailable fails the test unless err fails each of n records with
// messaging.ErrUnavailable and took is timeout at least and timeout plus
// deadlineSlack at most; when closing, a record may fail sooner with
// messaging.ErrClosed (Close stops the retries).
func checkUnavailable(t *testing.T, name string, r timedResult, n int, timeout time.Duration, closing bool) {
	t.Helper()
	t.Logf("%s failed %v after it began", name, r.took.Round(time.Millisecond))
	var pe *messaging.PublishError
	if !errors.As(r.err, &pe) || len(pe.Errs) != n {
		t.Errorf("%s: %v, want a PublishError for %d records", name, r.err, n)
		return
	}
	for i, err := range pe.Errs {
		if !errors.Is(err, messaging.ErrUnavailable) && !(closing && errors.Is(err, messaging.ErrClosed)) {
			t.Errorf("%s: record %d: %v, want messaging.ErrUnavailable", name, i, err)
		}
	}
	if (r.took < timeout && !closing) || r.took > timeout+deadlineSlack {
		t.Errorf("%s failed %v after it began, want about the %v unavailable timeout", name, r.took, timeout)
	}
}

// startQueuedCalls makes a producer (with the unavailable timeout
// timeout) of a silent broker and three calls of two records each to one
// partition: the first sends its request, the other two queue behind it.
// It returns the producer, the calls' results and when the last one began.
func startQueuedCalls(t *testing.T, timeout time.Duration) (*producerEnv, []chan timedResult, time.Time) {
	t.Helper()
	queued := make(chan int, 3)
	e := newProducerEnv(t, 1, func(s *producer.Settings) {
		s.Unavailable = timeout
		s.TestHookQueued = func(waiting int) { queued <- waiting }
	})
	e.gate.silence()
	results := make([]chan timedResult, 3)
	var last time.Time
	for i := range results {
		results[i] = make(chan timedResult, 1)
		begin := time.Now()
		last = begin
		go func() {
			err := e.p.Write(context.Background(), e.topic, 1, e.records(2, 8, "k"))
			results[i] <- timedResult{err, time.Since(begin)}
		}()
		if w := <-queued; w != 2*i {
			t.Fatalf("call %d queued with %d records waiting, want %d", i, w, 2*i)
		}
	}
	return e, results, last
}

// TestProducerQueuedCallsUnavailable: calls queued behind a request to a
// broker that takes it and never answers each fail with
// messaging.ErrUnavailable about the unavailable timeout after they began.
func TestProducerQueuedCallsUnavailable(t *testing.T) {
	const timeout = time.Second
	_, results, _ := startQueuedCalls(t, timeout)
	for i, res := range results {
		checkUnavailable(t, "call "+string(rune('A'+i)), <-res, 2, timeout, false)
	}
}

// TestProducerCloseWhileUnavailable: Close while calls wait behind a
// request to a silent broker returns about the unavailable timeout after
// the last call began, and every call gets its result.
func TestProducerCloseWhileUnavailable(t *testing.T) {
	const timeout = time.Second
	e, results, last := startQueuedCalls(t, timeout)
	e.p.Close()
	if took := time.Since(last); took > timeout+deadlineSlack {
		t.Errorf("Close returned %v after the last call began, want within about the %v unavailable timeout", took, timeout)
	}
	for i, res := range results {
		checkUnavailable(t, "call "+string(rune('A'+i)), <-res, 2, timeout, true)
	}
}

// TestProducerSlowBrokerQueuedCalls: calls queued behind the requests of a
// broker that answers each one, slowly, wait for their turn however long
// that takes: a broker that takes requests is not unavailable. (Six calls
// of one request each, 300ms a request: the last waits 1.5s, longer than
// the 1s unavailable timeout, behind the others.)
func TestProducerSlowBrokerQueuedCalls(t *testing.T) {
	const (
		timeout = time.Second
		calls   = 6
		slow    = 300 * time.Millisecond
	)
	e := newProducerEnv(t, 1, func(s *producer.Settings) {
		s.Unavailable = timeout
		s.MaxRecords = 2 // a call a request
	})
	e.gate.mu.Lock()
	e.gate.slow = slow
	e.gate.mu.Unlock()
	begin := time.Now()
	errs := make(chan error, calls)
	for range calls {
		go func() { errs <- e.p.Write(context.Background(), e.topic, 1, e.records(2, 8, "k")) }()
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Errorf("a call queued behind a slow broker failed: %v", err)
		}
	}
	if took := time.Since(begin); !t.Failed() && took < calls*slow {
		t.Fatalf("the calls took %v, want at least %v (one request at a time): the test did not queue them", took, calls*slow)
	}
}

// TestProducerDeadlinesFromEntry: records given with the times they entered
// (as PublishAsync's batches are) fail each at its own deadline: one whose
// deadline passed before its request is failed without being sent, and the
// others are retried without those that failed.
func TestProducerDeadlinesFromEntry(t *testing.T) {
	const timeout = time.Second
	e := newProducerEnv(t, 1, func(s *producer.Settings) { s.Unavailable = timeout })
	e.gate.silence()
	now := time.Now()
	entered := []time.Time{now.Add(-2 * timeout), now.Add(-timeout / 2), now}
	err := e.p.WriteEntered(context.Background(), now, entered, e.topic, 1, e.records(3, 8, "k"))
	took := time.Since(now)
	checkUnavailable(t, "call", timedResult{err, took}, 3, timeout, false)
	var pe *messaging.PublishError
	if errors.As(err, &pe) && !strings.Contains(pe.Errs[0].Error(), "not sent") {
		t.Errorf("record 0, expired before its request: %v, want it reported not sent", pe.Errs[0])
	}
	// Record 0 is never sent; record 1 fails half a timeout in, and record
	// 2 goes on alone.
	reqs := e.gate.requests()
	if len(reqs) < 2 || !slices.Equal(reqs[0], []string{"1", "2"}) || !slices.Equal(reqs[len(reqs)-1], []string{"2"}) {
		t.Errorf("produce requests held %v, want records 1 and 2, then 2 alone", reqs)
	}
	for _, r := range reqs[1:] {
		if !slices.Equal(r, []string{"2"}) {
			t.Errorf("produce requests held %v, want records 1 and 2 once, then 2 alone", reqs)
			break
		}
	}
}

// TestPublishQueuedUnavailableSilentBroker: PublishAsync and Publish calls
// to one partition of a broker that takes requests and does not answer
// (the proxy holds every byte for 3s, each way) each fail with
// messaging.ErrUnavailable about unavailable_timeout after they began (for
// PublishAsync, after the message was queued), however they queued behind
// each other; each message has one result.
func TestPublishQueuedUnavailableSilentBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("delays a private cluster")
	}
	const timeout = time.Second
	c, topic := silentClient(t, true)
	results := publishQueued(c.PublishAsync, c.Publish, topic)
	for name, res := range results {
		r, ok := oneResult(t, name, res)
		if !ok {
			continue
		}
		if !errors.Is(r.err, messaging.ErrUnavailable) {
			t.Errorf("%s: %v, want messaging.ErrUnavailable", name, r.err)
		}
		if r.took < timeout || r.took > timeout+deadlineSlack {
			t.Errorf("%s failed %v after it began, want about the 1s unavailable_timeout", name, r.took)
		}
	}
}

// silentClient returns a client (unavailable_timeout=1s) of a private
// cluster that has taken a record with key "k" on the topic it returns and
// then stops answering: its proxy holds every byte for 3s each way, as in
// TestPublishUnavailableSilentBroker, until the test ends.
func silentClient(t *testing.T, closeAtEnd bool) (*kafka.Client, string) {
	t.Helper()
	k := kafkatest.StartCluster(t, 1)
	c := openURL(t, privateURL(k)+"&unavailable_timeout=1s", closeAtEnd)
	topic := integration.UniqueName(t, "silent")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	k.Proxy(0).SetDelay(3 * time.Second)
	t.Cleanup(func() { k.Proxy(0).SetDelay(0) })
	return c, topic
}

// oneResult returns the one result in res (closed), failing the test when
// it holds another number of them.
func oneResult(t *testing.T, name string, res <-chan timedResult) (timedResult, bool) {
	t.Helper()
	var rs []timedResult
	for r := range res {
		rs = append(rs, r)
	}
	if len(rs) != 1 {
		t.Errorf("%s: %d results, want 1", name, len(rs))
		return timedResult{}, false
	}
	t.Logf("%s: %v after it began: %v", name, rs[0].took.Round(time.Millisecond), rs[0].err)
	return rs[0], true
}

// publishQueued publishes to topic, all with one key (one partition): three
// messages with PublishAsync and two Publish calls at the same time. It
// returns each one's results (closed once it has them all, for
// PublishAsync after a Flush) by name.
func publishQueued(async func(context.Context, string, *messaging.Message, messaging.PublishCallback), publish func(context.Context, string, ...*messaging.Message) error, topic string) map[string]chan timedResult {
	results := map[string]chan timedResult{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := false // results are no longer taken
	for i := range 3 {
		name := "PublishAsync " + string(rune('1'+i))
		ch := make(chan timedResult, 4)
		results[name] = ch
		var once sync.Once
		begin := time.Now()
		wg.Add(1)
		async(context.Background(), topic, &messaging.Message{Key: "k"}, func(_ *messaging.Message, err error) {
			mu.Lock()
			if !done {
				select {
				case ch <- timedResult{err, time.Since(begin)}:
				default: // more results than the test counts
				}
			}
			mu.Unlock()
			once.Do(wg.Done)
		})
	}
	for i := range 2 {
		name := "Publish " + string(rune('1'+i))
		ch := make(chan timedResult, 1)
		results[name] = ch
		wg.Go(func() {
			begin := time.Now()
			err := publish(context.Background(), topic, &messaging.Message{Key: "k"})
			ch <- timedResult{err, time.Since(begin)}
		})
	}
	wg.Wait()
	mu.Lock()
	done = true
	for _, ch := range results {
		close(ch)
	}
	mu.Unlock()
	return results
}

// TestCloseWhileBrokerSilent: a client's Close while PublishAsync and
// Publish calls wait on a silent broker, some queued behind the others'
// requests, returns about unavailable_timeout after the last call began,
// and every message has one result. (Close is called when the first
// result arrives: the calls have all entered by then, and those queued
// behind the first request are still waiting. They used to make their
// one attempt during Close, with a whole unavailable_timeout of their own.)
func TestCloseWhileBrokerSilent(t *testing.T) {
	if testing.Short() {
		t.Skip("delays a private cluster")
	}
	const timeout = time.Second
	c, topic := silentClient(t, false)
	var mu sync.Mutex
	var last time.Time // when the last call began
	began := func() {
		mu.Lock()
		last = time.Now()
		mu.Unlock()
	}
	first := make(chan struct{})
	var once sync.Once
	result := func() { once.Do(func() { close(first) }) }
	closed := make(chan time.Duration, 1)
	go func() {
		<-first
		_ = c.Close()
		mu.Lock()
		defer mu.Unlock()
		closed <- time.Since(last)
	}()
	results := publishQueued(func(ctx context.Context, topic string, m *messaging.Message, done messaging.PublishCallback) {
		began()
		c.PublishAsync(ctx, topic, m, func(m *messaging.Message, err error) {
			result()
			done(m, err)
		})
	}, func(ctx context.Context, topic string, msgs ...*messaging.Message) error {
		began()
		defer result()
		return c.Publish(ctx, topic, msgs...)
	}, topic)
	took := <-closed
	t.Logf("Close returned %v after the last call began", took.Round(time.Millisecond))
	if took > timeout+deadlineSlack {
		t.Errorf("Close returned %v after the last call began, want within about the 1s unavailable_timeout", took)
	}
	for name, res := range results {
		r, ok := oneResult(t, name, res)
		if ok && !errors.Is(r.err, messaging.ErrUnavailable) && !errors.Is(r.err, messaging.ErrClosed) {
			t.Errorf("%s: %v, want messaging.ErrUnavailable or ErrClosed", name, r.err)
		}
	}
}
