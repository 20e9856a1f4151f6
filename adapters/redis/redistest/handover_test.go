package redistest_test

import (
	"context"
	"errors"
	"fmt"
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

// Closing idle subscriptions does not wait for their XREADGROUP blocked in
// Redis (1s each before the engine: 50 took about 45s).
func TestCloseIdleSubscriptionsPromptly(t *testing.T) {
	const n = 50
	// Each subscription keeps a connection blocked in a read: a pool
	// larger than the subscriptions, as the package documentation says.
	o, err := goredis.ParseURL(redistest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	o.PoolSize = 2 * n
	rc := goredis.NewClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	c, err := redisadapter.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	topic := topicFor(t, c, "idleclose")
	group := integration.UniqueName(t, "g")
	subs := make([]messaging.Subscription, n)
	for i := range subs {
		var opts []messaging.SubscribeOption
		if i%2 == 0 { // group members and group-less readers
			opts = append(opts, messaging.Group(group))
		}
		subs[i] = subscribe(t, c, t.Context(), topic, func(context.Context, *messaging.Message) error { return nil }, opts...)
	}
	begin := time.Now()
	for _, sub := range subs {
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("closing %d idle subscriptions took %v, want well under the block time each", n, took)
	}
}

// A member that keeps failing lets the other members take what it nacked:
// the other (idle, blocked in XREADGROUP) member gets each nacked message
// within about a reclaim period, and the failing member never gets the same
// message twice, although it reclaims on the same period.
func TestNackHandOverToIdleMember(t *testing.T) {
	a, b := redistest.Open(t), redistest.Open(t)
	topic := topicFor(t, a, "handover")
	group := integration.UniqueName(t, "g")
	if err := a.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	const ack = time.Minute // reclaim every second (the block time)
	var mu sync.Mutex
	failed := map[string]int{}
	nacked := make(chan string, 100)
	subscribe(t, a, t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		failed[m.ID]++
		mu.Unlock()
		nacked <- m.ID
		return errors.New("this member always fails")
	}, messaging.Group(group), messaging.AckDeadline(ack))
	handled := make(chan string, 100)
	subscribe(t, b, t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		handled <- m.ID
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ack))

	const msgs = 6
	for i := range msgs {
		id := fmt.Sprint("m", i)
		if err := a.Publish(t.Context(), topic, &messaging.Message{ID: id}); err != nil {
			t.Fatal(err)
		}
		// Whichever member XREADGROUP served first, b has it within
		// about a second (the reclaim period) of a's nack.
		select {
		case got := <-handled:
			if got != id {
				t.Fatalf("b got %s, want %s", got, id)
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("%s not handed over within 4s (AckDeadline %v)", id, ack)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range failed {
		if n > 1 {
			t.Errorf("the failing member got %s %d times; the other member should take a nacked message first", id, n)
		}
	}
	t.Logf("the failing member got %d of %d messages first", len(failed), msgs)
}

// A read that Close stopped waiting for may still be served by Redis (the
// subscription's consumer then owns the entries): they are released, so
// another member gets them at once rather than after the ack deadline.
func TestClosedReadReleased(t *testing.T) {
	a, b := redistest.Open(t), redistest.Open(t)
	topic := topicFor(t, a, "closedread")
	group := integration.UniqueName(t, "g")
	if err := a.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	const ack = time.Minute
	ran := make(chan struct{}, 1)
	subA := subscribe(t, a, t.Context(), topic, func(context.Context, *messaging.Message) error {
		ran <- struct{}{}
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ack))
	if err := subA.Close(); err != nil {
		t.Fatal(err)
	}
	// a's last XREADGROUP, blocked for up to the block time, is the only
	// reader of the group now: Redis serves it this entry.
	if err := a.Publish(t.Context(), topic, &messaging.Message{ID: "served-late"}); err != nil {
		t.Fatal(err)
	}
	handled := make(chan string, 1)
	subscribe(t, b, t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		handled <- m.ID
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ack))
	select {
	case id := <-handled:
		if id != "served-late" {
			t.Fatalf("b got %s", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("message not handed over within 5s (AckDeadline %v)", ack)
	}
	select {
	case <-ran:
		t.Fatal("the closed subscription ran its handler")
	default:
	}
	// The late read made Redis create a's consumer again; a deletes it
	// once the read is back, so only b's is left.
	waitConsumers(t, b, topic, group, 1)
}

// waitConsumers waits up to 5s for the group to have n consumers (XINFO
// CONSUMERS), and fails the test with their names if it does not.
func waitConsumers(t *testing.T, c *redisadapter.Client, topic, group string, n int) {
	t.Helper()
	integration.Eventually(t, 5*time.Second, func() error {
		cs, err := c.Redis().XInfoConsumers(t.Context(), c.StreamKey(topic), group).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == n {
			return nil
		}
		var names []string
		for _, c := range cs {
			names = append(names, fmt.Sprintf("%s (%d pending, idle %v)", c.Name, c.Pending, c.Idle))
		}
		return fmt.Errorf("the group has consumers %v, want %d", names, n)
	})
}

// A member alone in its group takes back what it nacked at once, rather
// than after yielding a reclaim period to members that are not there
// (about 1.3s before it counted them): alone from the start, and after the
// other member left (its Close deleted its consumer), also when it held
// messages at Close (released: they stay pending until a member claims
// them, but not on its consumer) and Redis served its last blocked read
// after Close. With the other member still subscribed,
// TestNackHandOverToIdleMember checks that it yields.
func TestNackBackPromptlyToLoneMember(t *testing.T) {
	const ack, within = time.Minute, 750 * time.Millisecond
	for _, left := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "other left"}[left], func(t *testing.T) {
			c := redistest.Open(t)
			topic := topicFor(t, c, "lone")
			group := integration.UniqueName(t, "g")
			if err := c.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			ids := []string{"lone"}
			if left {
				ids = otherLeft(t, topic, group, ack)
			}
			got := make(chan attempt, 10*len(ids))
			subscribe(t, c, t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
				got <- attempt{m.ID, m.Attempt, time.Now()}
				if m.Attempt < 3 {
					return errors.New("fails twice")
				}
				return nil
			}, messaging.Group(group), messaging.AckDeadline(ack))
			if !left {
				if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "lone"}); err != nil {
					t.Fatal(err)
				}
			}
			wantPromptAttempts(t, got, ids, within, ack)
			waitConsumers(t, c, topic, group, 1)
		})
	}
}

// otherLeft runs a member of the group on a client of its own that leaves
// while it holds three messages (one in its handler, which returns when
// Shutdown cancels it) and while its read waits in Redis, which then gets a
// fourth message. It returns the four messages' IDs.
func otherLeft(t *testing.T, topic, group string, ack time.Duration) []string {
	t.Helper()
	oc := redistest.Open(t)
	ids := []string{"held-0", "held-1", "held-2"}
	// Published first, so that the member's first read takes all three: a
	// read that returned one alone would run its handler in the fetching
	// goroutine (Concurrency 1), which then reads nothing more.
	for _, id := range ids {
		if err := oc.Publish(t.Context(), topic, &messaging.Message{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	other := subscribe(t, oc, t.Context(), topic, func(ctx context.Context, _ *messaging.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group(group), messaging.AckDeadline(ack))
	integration.Eventually(t, 10*time.Second, func() error {
		p, err := oc.Redis().XPending(t.Context(), oc.StreamKey(topic), group).Result()
		if err != nil {
			t.Fatal(err)
		}
		if p.Count != int64(len(ids)) {
			return fmt.Errorf("the other member read %d of %d messages", p.Count, len(ids))
		}
		return nil
	})
	// Shutdown whose time is up: the handler is cancelled and everything
	// held released at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := other.(messaging.Shutdowner).Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with its handler running: %v, want context.Canceled", err)
	}
	if err := oc.Publish(t.Context(), topic, &messaging.Message{ID: "late"}); err != nil {
		t.Fatal(err)
	}
	// The member has left once no consumer but the holder of released
	// entries is in the group. Shutdown gave up at once; the subscription
	// then releases what it held and deletes its consumer, and releases
	// the late message (Redis served it to the read still waiting there
	// before the XADD returned) and deletes the consumer Redis created
	// again for that read. A nack before then counts the member and
	// yields to it (once in CI: the attempts came 1.28s after the nacks).
	integration.Eventually(t, 10*time.Second, func() error {
		cs, err := oc.Redis().XInfoConsumers(t.Context(), oc.StreamKey(topic), group).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Name != releasedHolder {
				return fmt.Errorf("consumer %s (%d pending) is still in the group", c.Name, c.Pending)
			}
		}
		return nil
	})
	return append(ids, "late")
}

// releasedHolder is the adapter's consumer that holds the entries released
// by members that left, until a member claims them (no member: it is not
// counted).
const releasedHolder = "msgkit:released"

// A message one member nacks goes to another member of the group at once,
// wherever that member runs (another client here): the nacking member
// wakes the others (Pub/Sub) rather than leaving the entry to their next
// periodic reclaim, up to a reclaim period (1s) later. Five rounds, each
// with a new topic: the failing member holds the message until the other
// member has subscribed and is waiting for new entries (its first reclaim
// done, its first XREADGROUP sent), then fails it.
func TestNackHandOverPrompt(t *testing.T) {
	const ack, within, rounds = time.Minute, 300 * time.Millisecond, 5
	a, b := redistest.Open(t), redistest.Open(t)
	reads := countReads(b)
	for round := range rounds {
		topic := topicFor(t, a, fmt.Sprint("prompt", round))
		group := integration.UniqueName(t, "g")
		if err := a.Provision(t.Context(), topic, group); err != nil {
			t.Fatal(err)
		}
		held, fail := make(chan struct{}, 10), make(chan struct{})
		nackedAt := make(chan time.Time, 10)
		subA := subscribe(t, a, t.Context(), topic, func(context.Context, *messaging.Message) error {
			held <- struct{}{}
			<-fail
			nackedAt <- time.Now() // the handler returns after this
			return errors.New("this member fails")
		}, messaging.Group(group), messaging.AckDeadline(ack))
		if err := a.Publish(t.Context(), topic, &messaging.Message{ID: "p"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatal("the failing member never got the message")
		}
		handled := make(chan time.Time, 10)
		before := reads.Load()
		subB := subscribe(t, b, t.Context(), topic, func(context.Context, *messaging.Message) error {
			handled <- time.Now()
			return nil
		}, messaging.Group(group), messaging.AckDeadline(ack))
		for deadline := time.Now().Add(10 * time.Second); reads.Load() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the other member sent no XREADGROUP within 10s")
			}
		}
		close(fail)
		select {
		case at := <-handled:
			if gap := at.Sub(<-nackedAt); gap > within {
				t.Errorf("round %d: the other member got the nacked message %v after the nack, want within %v", round, gap, within)
			} else {
				t.Logf("round %d: handed over %v after the nack", round, gap)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: not handed over within 10s (AckDeadline %v)", round, ack)
		}
		_ = subA.Close()
		_ = subB.Close()
		if n := len(held) + len(handled); n > 0 {
			t.Errorf("round %d: %d more deliveries of the one message", round, n)
		}
	}
}

// seenWithin is how recently a consumer must have been seen (XINFO
// CONSUMERS idle) for a member that nacks to count it, with the default
// block time (see the package documentation: 3 block times plus 2s).
const seenWithin = 3*redisadapter.DefaultBlock + 2*time.Second

// waitSilent waits until the group's consumer name has been idle (XINFO
// CONSUMERS) for longer than seenWithin, and fails the test if it is gone.
func waitSilent(t *testing.T, c *redisadapter.Client, topic, group, name string) {
	t.Helper()
	integration.Eventually(t, 4*seenWithin, func() error {
		cs, err := c.Redis().XInfoConsumers(t.Context(), c.StreamKey(topic), group).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Name == name {
				if c.Idle > seenWithin {
					return nil
				}
				return fmt.Errorf("consumer %s idle %v, waiting for more than %v", name, c.Idle, seenWithin)
			}
		}
		t.Fatalf("consumer %s is no longer in the group", name)
		return nil
	})
}

// A member whose only other member crashed (its consumer stays in the group
// until the stale consumer cleanup, an hour by default) takes back what it
// nacked at once once the crashed consumer has been silent for longer than
// a live member ever is: it counts only consumers seen lately (for up to
// an hour, each nack came back about 1.3s late before).
func TestNackBackPromptlyAfterOtherCrashed(t *testing.T) {
	const ack, within = time.Minute, 750 * time.Millisecond
	c, dead := redistest.Open(t), redistest.Open(t)
	topic := topicFor(t, c, "crashed")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	subscribe(t, dead, t.Context(), topic, func(context.Context, *messaging.Message) error { return nil },
		messaging.Group(group), messaging.AckDeadline(ack))
	waitConsumers(t, c, topic, group, 1)
	cs, err := c.Redis().XInfoConsumers(t.Context(), c.StreamKey(topic), group).Result()
	if err != nil {
		t.Fatal(err)
	}
	crashed := cs[0].Name
	redistest.Kill(t, dead) // its subscription never closes: the consumer stays
	got := make(chan attempt, 30)
	subscribe(t, c, t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- attempt{m.ID, m.Attempt, time.Now()}
		if m.Attempt < 3 {
			return errors.New("fails twice")
		}
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ack))
	waitSilent(t, c, topic, group, crashed)
	ids := []string{"m0", "m1", "m2"}
	for _, id := range ids {
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	wantPromptAttempts(t, got, ids, within, ack)
	waitConsumers(t, c, topic, group, 2) // the crashed consumer is still there
}

// A member that has waited for new entries for longer than seenWithin still
// counts as a member: it gets what another member nacks at once (Redis 7.0
// does not count a read that returns nothing as activity; a member marks
// its consumer seen at every reclaim). The failing member holds the message
// until the other member has been waiting that long, then fails it; a
// consumer created alongside the other member and never used shows how long
// that was.
func TestNackHandOverToLongIdleMember(t *testing.T) {
	const ack, within = time.Minute, time.Second
	a, b := redistest.Open(t), redistest.Open(t)
	topic := topicFor(t, a, "longidle")
	group := integration.UniqueName(t, "g")
	if err := a.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	held, fail := make(chan struct{}), make(chan struct{})
	nackedAt := make(chan time.Time, 1)
	subscribe(t, a, t.Context(), topic, func(context.Context, *messaging.Message) error {
		if runs.Add(1) == 1 { // held until fail; fails again at once
			close(held)
			<-fail
			nackedAt <- time.Now()
		}
		return errors.New("this member fails")
	}, messaging.Group(group), messaging.AckDeadline(ack))
	if err := a.Publish(t.Context(), topic, &messaging.Message{ID: "q"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the failing member never got the message")
	}
	handled := make(chan time.Time, 10)
	subscribe(t, b, t.Context(), topic, func(context.Context, *messaging.Message) error {
		handled <- time.Now()
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ack))
	const clock = "never-reads"
	if err := a.Redis().XGroupCreateConsumer(t.Context(), a.StreamKey(topic), group, clock).Err(); err != nil {
		t.Fatal(err)
	}
	waitSilent(t, a, topic, group, clock)
	close(fail)
	select {
	case at := <-handled:
		if gap := at.Sub(<-nackedAt); gap > within {
			t.Errorf("the other member got the nacked message %v after the nack, want within %v", gap, within)
		} else {
			t.Logf("handed over %v after the nack", gap)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not handed over within 10s (AckDeadline %v)", ack)
	}
	if n := runs.Load() - 1; n > 0 {
		t.Errorf("the failing member got the message %d more times; the other member should take it first", n)
	}
}

// attempt is one handling of message id: its Attempt, and when.
type attempt struct {
	id string
	n  int
	at time.Time
}

// wantPromptAttempts takes 3 attempts of each of ids from got (a handler
// that fails twice sends them) and wants each retry within within of the
// attempt before it, the nack (not after AckDeadline ack).
func wantPromptAttempts(t *testing.T, got <-chan attempt, ids []string, within, ack time.Duration) {
	t.Helper()
	last := map[string]attempt{}
	for range 3 * len(ids) {
		select {
		case a := <-got:
			prev := last[a.id]
			if a.n != prev.n+1 {
				t.Fatalf("%s: attempt %d after %d", a.id, a.n, prev.n)
			}
			if a.n > 1 {
				if gap := a.at.Sub(prev.at); gap > within {
					t.Errorf("%s: attempt %d came %v after the nack, want within %v", a.id, a.n, gap, within)
				} else {
					t.Logf("%s: attempt %d came %v after the nack", a.id, a.n, gap)
				}
			}
			last[a.id] = a
		case <-time.After(10 * time.Second):
			t.Fatalf("attempts %v after 10s, want 3 of each of %v (AckDeadline %v)", last, ids, ack)
		}
	}
}
