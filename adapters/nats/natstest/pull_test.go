package natstest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// The JetStream receiver pulls only what the engine has room for: these
// tests read the server's view of the group's consumer (NumAckPending is
// what the server delivered and nobody settled yet).

// pullTopic provisions a topic with group g and returns the group's
// consumer, for its info.
func pullTopic(t *testing.T, c *natsadapter.Client, name string) (topic string, cons jetstream.Consumer) {
	t.Helper()
	topic = integration.UniqueName(t, name)
	if err := c.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	cons, err := c.JetStream().Consumer(t.Context(), c.StreamName(topic), c.ConsumerName(topic, "g"))
	if err != nil {
		t.Fatal(err)
	}
	return topic, cons
}

func consumerInfo(t *testing.T, cons jetstream.Consumer) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func publishNumbered(t *testing.T, c *natsadapter.Client, topic, prefix string, n int) []string {
	t.Helper()
	msgs := make([]*messaging.Message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		msgs[i] = &messaging.Message{ID: ids[i], Payload: []byte("x")}
	}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestPullWithinPrefetch: with handlers released one message at a time,
// the server never has more of the subscription's messages delivered and
// unsettled than Prefetch, and every message is handled once.
func TestPullWithinPrefetch(t *testing.T) {
	const n, prefetch = 60, 8
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "bound")
	published := publishNumbered(t, c, topic, "b", n)
	col := integration.NewCollector()
	release := make(chan struct{})
	sub, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		col.Add(m)
		return nil
	}, messaging.Group("g"), messaging.Concurrency(2), messaging.Prefetch(prefetch), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	most := 0
	for i := range n {
		// Every handler is blocked here: what the server delivered is
		// what the subscription holds or has on its way.
		info := consumerInfo(t, cons)
		most = max(most, info.NumAckPending)
		if info.NumAckPending > prefetch {
			t.Fatalf("after %d handled: %d delivered and unsettled, want at most Prefetch %d", i, info.NumAckPending, prefetch)
		}
		select {
		case release <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatalf("no handler waiting after %d handled", i)
		}
	}
	col.WaitDistinct(t, n, 10*time.Second)
	if dups := col.Report(t, published); dups > 0 {
		t.Errorf("%d duplicates", dups)
	}
	t.Logf("at most %d delivered and unsettled (Prefetch %d)", most, prefetch)
}

// TestIdlePullWithinPrefetch: a subscription idle for a while (its pull
// request waiting on the server, kept alive by heartbeats every second)
// still has no more than Prefetch requested: when a burst of messages comes
// after three idle seconds, with every handler blocked, the server delivers
// Prefetch of them and no more. (A request sent again at every heartbeat,
// without counting the one outstanding, had the server deliver the burst
// to the idle subscription.)
func TestIdlePullWithinPrefetch(t *testing.T) {
	const prefetch = 4
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "idlebound")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the subscription closes
	sub, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, messaging.Group("g"), messaging.Concurrency(1), messaging.Prefetch(prefetch), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	// The idle period under test: three pull heartbeats. Meanwhile the
	// server holds the subscription's request(s).
	idle := time.NewTimer(3 * time.Second)
	look := time.NewTicker(100 * time.Millisecond)
	defer look.Stop()
	for watching := true; watching; {
		if info := consumerInfo(t, cons); info.NumAckPending != 0 {
			t.Fatalf("%d delivered while nothing was published", info.NumAckPending)
		}
		select {
		case <-look.C:
		case <-idle.C:
			watching = false
		}
	}
	publishNumbered(t, c, topic, "burst", 3*prefetch)
	integration.Eventually(t, 10*time.Second, func() error {
		info := consumerInfo(t, cons)
		if info.NumAckPending > prefetch {
			t.Fatalf("%d delivered and unsettled after three idle seconds, want at most Prefetch %d", info.NumAckPending, prefetch)
		}
		if info.NumAckPending != prefetch || info.NumPending != 2*prefetch {
			return fmt.Errorf("consumer: %d delivered and unsettled, %d pending, want %d and %d", info.NumAckPending, info.NumPending, prefetch, 2*prefetch)
		}
		return nil
	})
}

// TestSettledRoomAskedForOnceNothingComes: a settlement made while the
// subscription's requests are outstanding asks for its room only with a
// large enough count (see the adapter's ackNext); a smaller one is asked
// for once nothing is on its way any more, so no handler waits for a
// message the server keeps. One message is handled while the request
// waits (its room: one message, not asked for), then, with every handler
// blocked, a burst must fill all Prefetch handlers (Concurrency =
// Prefetch), the server keeping the rest.
func TestSettledRoomAskedForOnceNothingComes(t *testing.T) {
	const prefetch = 8
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "unasked")
	var block atomic.Bool
	var running atomic.Int64
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the subscription closes
	handled := make(chan struct{}, 1)
	sub, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
		if !block.Load() {
			handled <- struct{}{}
			return nil
		}
		running.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, messaging.Group("g"), messaging.Concurrency(prefetch), messaging.Prefetch(prefetch), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	publishNumbered(t, c, topic, "first", 1)
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the first message was not handled")
	}
	integration.Eventually(t, 10*time.Second, func() error {
		if info := consumerInfo(t, cons); info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
			return fmt.Errorf("the first message is not acked yet: %d delivered and unsettled, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	block.Store(true)
	publishNumbered(t, c, topic, "burst", 2*prefetch)
	integration.Eventually(t, 10*time.Second, func() error {
		info := consumerInfo(t, cons)
		if info.NumAckPending > prefetch {
			t.Fatalf("%d delivered and unsettled, want at most Prefetch %d", info.NumAckPending, prefetch)
		}
		if n := running.Load(); n != prefetch || info.NumAckPending != prefetch || info.NumPending != prefetch {
			return fmt.Errorf("%d handlers running, %d delivered and unsettled, %d pending; want %d, %d and %d", n, info.NumAckPending, info.NumPending, prefetch, prefetch, prefetch)
		}
		return nil
	})
}

// TestIdlePullOutlivesItsRequest: an idle subscription's pull request
// expires on the server after 30s (the adapter's pullExpires), which
// answers with the count it had left (status 408); the subscription takes
// that count off what it has outstanding and asks again at once. Counted
// as still outstanding, the request would hold up any new one, and once
// the heartbeats of the expired request stopped, the pull would be
// dropped as lost ("fetching failed; retrying") and opened again, 2s
// later, after every 30s of quiet. The test idles past the expiry and
// three heartbeats, then checks that nothing was logged, that the server
// holds one request of the subscription, and that a message published
// then comes at once.
func TestIdlePullOutlivesItsRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("idles 34s")
	}
	t.Parallel() // idle for 34s
	rec := newRecordingHandler()
	c := natstest.Open(t, natsadapter.WithLogger(slog.New(rec)))
	topic, cons := pullTopic(t, c, "expiry")
	got := make(chan string, 1)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	}, messaging.Group("g"), messaging.Prefetch(4), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	// The idle period under test: the request's 30s and three heartbeats.
	select {
	case msg := <-rec.msgs:
		t.Fatalf("an idle subscription logged %q", msg)
	case <-time.After(34 * time.Second):
	}
	if info := consumerInfo(t, cons); info.NumWaiting != 1 {
		t.Errorf("the server holds %d pull requests of the subscription after the first expired, want 1", info.NumWaiting)
	}
	published := publishNumbered(t, c, topic, "after", 1)
	select {
	case id := <-got:
		if id != published[0] {
			t.Fatalf("got %s, want %s", id, published[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a message published after the expiry not delivered within 5s")
	}
}

// TestBatchWaitKeepsOutstandingPulls: SubscribeBatch ends a fetch at
// BatchWait while the pull request for the rest of the batch is still on
// the server; what that request delivers later is handed to the next batch,
// not left unacknowledged until the ack deadline.
func TestBatchWaitKeepsOutstandingPulls(t *testing.T) {
	const n = 8
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "batchwait")
	got := make(chan []*messaging.Message, n)
	sub, err := c.SubscribeBatch(t.Context(), topic, func(_ context.Context, ms []*messaging.Message) []error {
		got <- ms
		return nil
	}, messaging.Group("g"), messaging.BatchSize(5), messaging.BatchWait(20*time.Millisecond), messaging.AckDeadline(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	for i := range n {
		// One message at a time: each batch closes at BatchWait with
		// most of its pull request outstanding.
		id := fmt.Sprintf("w-%d", i)
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: id}); err != nil {
			t.Fatal(err)
		}
		select {
		case ms := <-got:
			if len(ms) != 1 || ms[0].ID != id || ms[0].Attempt != 1 {
				t.Fatalf("batch %v (attempt %d), want only %s, attempt 1", ids(ms), ms[0].Attempt, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not delivered within 10s (AckDeadline 1m)", id)
		}
	}
	integration.Eventually(t, 10*time.Second, func() error {
		info := consumerInfo(t, cons)
		if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.AckFloor.Stream != n {
			return fmt.Errorf("consumer: %d unsettled, %d redelivered, ack floor %d, want 0, 0, %d", info.NumAckPending, info.NumRedelivered, info.AckFloor.Stream, n)
		}
		return nil
	})
}

func ids(ms []*messaging.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestCloseWithPullsOutstanding: a member closed while its pull requests
// are on the server (idle, then while messages flow) leaves nothing
// delivered to it: another member gets every message at once, long before
// the ack deadline.
func TestCloseWithPullsOutstanding(t *testing.T) {
	const n = 200
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "closepull")
	opts := []messaging.SubscribeOption{messaging.Group("g"), messaging.Prefetch(16), messaging.AckDeadline(time.Minute)}

	idle, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	first := integration.NewCollector()
	handled := make(chan struct{})
	member, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		if first.Add(m); first.Total() == n/4 {
			close(handled)
		}
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	published := publishNumbered(t, c, topic, "c", n)
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatalf("first member handled %d of %d", first.Total(), n)
	}
	if err := member.Close(); err != nil {
		t.Fatal(err)
	}
	if info := consumerInfo(t, cons); info.NumAckPending != 0 {
		// Settled asynchronously: a nak may still be on its way, never
		// more than the member's Prefetch.
		t.Logf("right after Close: %d unsettled", info.NumAckPending)
	}
	rest := integration.NewCollector()
	other, err := c.Subscribe(t.Context(), topic, rest.Handler(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	missing := func() int {
		n := 0
		for _, id := range published {
			if first.Count(id) == 0 && rest.Count(id) == 0 {
				n++
			}
		}
		return n
	}
	if !rest.Wait(5*time.Second, func(*integration.Collector) bool { return missing() == 0 }) {
		t.Fatalf("%d messages not handled by either member within 5s (AckDeadline 1m)", missing())
	}
	for _, m := range rest.Messages() {
		if first.Count(m.ID) > 0 && m.Attempt == 1 {
			t.Errorf("%s handled by both members, the second time as attempt 1", m.ID)
		}
	}
}

// nextMemberGets subscribes another member with opts and waits until it
// has handled every message of published, failing the test after within
// (the tests' AckDeadline is a minute: a message must come at once).
func nextMemberGets(t *testing.T, c *natsadapter.Client, topic string, opts []messaging.SubscribeOption, published []string, within time.Duration, what string) *integration.Collector {
	t.Helper()
	col := integration.NewCollector()
	next, err := c.Subscribe(t.Context(), topic, col.Handler(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Close() })
	if !col.Wait(within, func(c *integration.Collector) bool { return len(c.Missing(published)) == 0 }) {
		t.Fatalf("%s %v not handled by the next member within %v (AckDeadline 1m)", what, col.Missing(published), within)
	}
	return col
}

// TestCloseNaksWhatArrivedAfterFetching: messages the server delivers to a
// stopping subscription's pull after its fetch loop ended (Shutdown waits
// for a running handler; the pull's requests are still on the server)
// are never handed to the engine: Close naks them, and another member
// gets them at once, not after the ack deadline. The handler blocks until
// the messages have arrived, as the server's count shows; the fetch loop
// ends as Shutdown begins, well before they are published and delivered.
func TestCloseNaksWhatArrivedAfterFetching(t *testing.T) {
	const late = 5
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "closelate")
	opts := []messaging.SubscribeOption{messaging.Group("g"), messaging.Concurrency(1), messaging.Prefetch(16), messaging.AckDeadline(time.Minute)}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error {
		once.Do(func() { close(started) })
		<-release // not the context: Shutdown waits for this handler
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	var unblocked sync.Once
	unblock := func() { unblocked.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close, which waits for the handler
	first := publishNumbered(t, c, topic, "first", 1)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never got a message")
	}
	shut := make(chan error, 1)
	go func() { shut <- sub.Shutdown(context.Background()) }()
	published := publishNumbered(t, c, topic, "late", late)
	integration.Eventually(t, 10*time.Second, func() error {
		if n := consumerInfo(t, cons).NumAckPending; n != 1+late {
			return fmt.Errorf("%d delivered and unsettled, want %d: the %d late messages on the stopping subscription's pull", n, 1+late, late)
		}
		return nil
	})
	unblock()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	col := nextMemberGets(t, c, topic, opts, published, 5*time.Second, "late messages")
	if col.Count(first[0]) > 0 {
		t.Errorf("%s, handled and acknowledged by the stopping subscription, delivered again", first[0])
	}
}

// TestStopReleasesOnce: the messages a stopping subscription releases
// (fetched, waiting behind the one its handler runs) reach the group once
// each: the next member gets each as its second delivery (Attempt 2: the
// server counts deliveries). Released while the stopping subscription's
// pull request still had room, they came straight back to it, and Close
// gave them back again: Attempt 3 after one stop. The interrupted message
// is not a release but a failure (a nack, before its last attempt), which
// may reach the server before the first release: it can come back once
// more, as any nack does while the pull lives. (That they come at once
// however much room the stopping pull had is the conformance case
// StopReleasesToNextMember.)
func TestStopReleasesOnce(t *testing.T) {
	const n = 4
	c := natstest.Open(t)
	topic, _ := pullTopic(t, c, "releaseonce")
	opts := []messaging.SubscribeOption{messaging.Group("g"), messaging.Concurrency(1), messaging.Prefetch(4 * n), messaging.AckDeadline(time.Minute)}
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	holding, err := c.Subscribe(ctx, topic, func(ctx context.Context, _ *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	published := publishNumbered(t, c, topic, "once", n)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never got a message")
	}
	cancel()
	if err := holding.Close(); err != nil {
		t.Fatal(err)
	}
	col := nextMemberGets(t, c, topic, opts, published, 10*time.Second, "released messages")
	for _, m := range col.Messages() {
		if m.ID != published[0] && m.Attempt != 2 {
			t.Errorf("%s: Attempt %d after one release, want 2", m.ID, m.Attempt)
		}
	}
}

// TestMaxAckPendingOfCreatedConsumers: WithMaxAckPending (max_ack_pending)
// is the MaxAckPending of the consumers the Client creates: a group's
// durable one and a group-less subscription's ephemeral one.
func TestMaxAckPendingOfCreatedConsumers(t *testing.T) {
	const limit = 7
	c := natstest.Open(t, natsadapter.WithMaxAckPending(limit))
	topic, cons := pullTopic(t, c, "maxackpending")
	if got := consumerInfo(t, cons).Config.MaxAckPending; got != limit {
		t.Errorf("group consumer: MaxAckPending %d, want %d", got, limit)
	}
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	s, err := c.JetStream().Stream(t.Context(), c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	list := s.ListConsumers(t.Context())
	ephemeral := 0
	for info := range list.Info() {
		if info.Config.Durable != "" {
			continue
		}
		ephemeral++
		if info.Config.MaxAckPending != limit {
			t.Errorf("ephemeral consumer %s: MaxAckPending %d, want %d", info.Name, info.Config.MaxAckPending, limit)
		}
	}
	if err := list.Err(); err != nil {
		t.Fatal(err)
	}
	if ephemeral != 1 {
		t.Fatalf("%d ephemeral consumers on the stream, want the subscription's one", ephemeral)
	}
}

// TestReadTakesNoAcknowledgements: a Read's consumer takes no
// acknowledgements, so it reads on past the server's limit of delivered
// and unacknowledged messages (MaxAckPending, 1000 by default): 1500
// messages are read at once, each once.
func TestReadTakesNoAcknowledgements(t *testing.T) {
	const n = 1500
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "readall")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	published := publishNumbered(t, c, topic, "r", n)
	col := integration.NewCollector()
	read, err := c.Read(t.Context(), topic, messaging.Earliest, col.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = read.Close() })
	col.WaitDistinct(t, n, 15*time.Second)
	if dups := col.Report(t, published); dups > 0 {
		t.Errorf("%d duplicates", dups)
	}
}

// TestWaitingForTheFetchLoopKeepsMessages: with Concurrency 1 the engine
// runs a message fetched alone in its fetching goroutine, and fetches
// nothing more until that handler returns; what the pull's requests
// deliver meanwhile waits in the receiver. Those messages get in-progress
// signals with the running handler's, so a handler that runs for three
// ack deadlines does not have them redelivered to another member of the
// group: every message is handled once.
func TestWaitingForTheFetchLoopKeepsMessages(t *testing.T) {
	t.Parallel()
	const ack = time.Second
	c := natstest.Open(t)
	topic, cons := pullTopic(t, c, "waiting")
	col := integration.NewCollector()
	started, slow := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
		col.Add(m)
		if m.ID == "w-first-0" {
			once.Do(func() { close(started) })
			select {
			case <-slow:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}, messaging.Group("g"), messaging.Concurrency(1), messaging.AckDeadline(ack))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	published := publishNumbered(t, c, topic, "w-first", 1)
	<-started
	published = append(published, publishNumbered(t, c, topic, "w", 5)...)
	// The five wait in a's receiver: the server has delivered them.
	integration.Eventually(t, 5*time.Second, func() error {
		if n := consumerInfo(t, cons).NumAckPending; n != 6 {
			return fmt.Errorf("%d delivered and unsettled, want 6", n)
		}
		return nil
	})
	b, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group("g"), messaging.AckDeadline(ack))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	// a's handler runs for three ack deadlines, b waiting for whatever the
	// server would redeliver; then it returns.
	time.Sleep(3 * ack)
	close(slow)
	col.WaitDistinct(t, len(published), 10*time.Second)
	if dups := col.Report(t, published); dups > 0 {
		t.Errorf("%d duplicates: messages waiting for the fetch loop were redelivered", dups)
	}
}
