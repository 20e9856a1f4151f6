package dedupe_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/redis/redisstore"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/dedupe"
)

var errBoom = errors.New("boom")

func msg(id, group string) *messaging.Message {
	return &messaging.Message{ID: id, Topic: "t", Group: group, Attempt: 1}
}

func TestDuplicateIsSkipped(t *testing.T) {
	var calls atomic.Int32
	h := mwtest.Must(dedupe.New(dedupe.NewMemoryStore()))(func(context.Context, *messaging.Message) error { calls.Add(1); return nil })
	for range 3 {
		if err := h(context.Background(), msg("a", "g")); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times for one ID, want 1", n)
	}
	// Another group of a fan-out handles it too.
	if err := h(context.Background(), msg("a", "other")); err != nil || calls.Load() != 2 {
		t.Fatalf("other group: %v, %d calls", err, calls.Load())
	}
}

// TestEphemeralKeysPerWrap: a message of an ephemeral subscription (empty
// Group) is deduplicated within one wrapped handler, not across handlers
// wrapped apart that share the store, whatever the key function; a
// message of a named group is deduplicated across them.
func TestEphemeralKeysPerWrap(t *testing.T) {
	for name, opts := range map[string][]dedupe.Option{
		"DefaultKey":  nil,
		"WithKeyFunc": {dedupe.WithKeyFunc(func(m *messaging.Message) string { return m.ID })},
	} {
		t.Run(name, func(t *testing.T) {
			mw := mwtest.Must(dedupe.New(dedupe.NewMemoryStore(), opts...))
			var calls [2]atomic.Int32
			var hs [2]messaging.Handler
			for i := range hs {
				hs[i] = mw(func(context.Context, *messaging.Message) error { calls[i].Add(1); return nil })
			}
			for range 2 { // a delivery, then a redelivery, to each
				for i, h := range hs {
					if err := h(context.Background(), msg("a", "")); err != nil {
						t.Fatalf("handler %d: %v", i, err)
					}
				}
			}
			if a, b := calls[0].Load(), calls[1].Load(); a != 1 || b != 1 {
				t.Fatalf("ephemeral: handlers ran %d and %d times, want once each", a, b)
			}
			for _, h := range hs { // a named group shares the record
				if err := h(context.Background(), msg("b", "g")); err != nil {
					t.Fatal(err)
				}
			}
			if n := calls[0].Load() + calls[1].Load(); n != 3 {
				t.Fatalf("named group: handlers ran %d times in all, want 3 (once for b)", n)
			}
		})
	}
}

// TestEphemeralSubscriptionsShareStore: two ephemeral subscriptions of a
// topic (each a group of its own) whose handlers share a dedupe store both
// handle a message, while a redelivery to one of them is still skipped.
func TestEphemeralSubscriptionsShareStore(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 10*time.Second)
	topic := mwtest.Topic(t, c, "dedupe-ephemeral")
	mw := mwtest.Must(dedupe.New(dedupe.NewMemoryStore(), dedupe.WithInProgressDelay(10*time.Millisecond)))
	var ranA, ranB atomic.Int32
	aDone, bDone := make(chan struct{}), make(chan struct{})
	closeA, closeB := sync.OnceFunc(func() { close(aDone) }), sync.OnceFunc(func() { close(bDone) })
	// A's first acknowledgement is lost (its outer layer fails the
	// delivery after dedupe recorded it): the redelivery must be skipped.
	loseFirstAck := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			err := next(ctx, m)
			switch {
			case err != nil:
				return err
			case m.Attempt == 1:
				return errors.New("ack lost")
			}
			closeA()
			return nil
		}
	}
	hA := messaging.Chain(func(context.Context, *messaging.Message) error { ranA.Add(1); return nil }, loseFirstAck, mw)
	hB := messaging.Chain(func(context.Context, *messaging.Message) error { ranB.Add(1); return nil },
		func(next messaging.Handler) messaging.Handler {
			return func(ctx context.Context, m *messaging.Message) error {
				err := next(ctx, m)
				if err == nil {
					closeB()
				}
				return err
			}
		}, mw)
	mwtest.Subscribe(t, ctx, c, topic, hA)
	mwtest.Subscribe(t, ctx, c, topic, hB)
	mwtest.Publish(t, ctx, c, topic, &messaging.Message{ID: "broadcast", Payload: []byte("x")})
	for name, done := range map[string]chan struct{}{"A (its redelivery)": aDone, "B": bDone} {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("subscription %s never acknowledged the message; handlers ran A %d, B %d times", name, ranA.Load(), ranB.Load())
		}
	}
	if a, b := ranA.Load(), ranB.Load(); a != 1 || b != 1 {
		t.Fatalf("handlers ran A %d, B %d times; want once each (both subscriptions handle the message, A's redelivery skipped)", a, b)
	}
}

// plainStore hides the TokenStore methods of a store: New uses its Claim
// and Release.
type plainStore struct{ dedupe.Store }

func TestFailureReleasesClaim(t *testing.T) {
	for name, store := range map[string]dedupe.Store{
		"TokenStore": dedupe.NewMemoryStore(),
		"Store":      plainStore{dedupe.NewMemoryStore()},
	} {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int32
			h := mwtest.Must(dedupe.New(store))(func(context.Context, *messaging.Message) error {
				if calls.Add(1) == 1 {
					return errBoom
				}
				return nil
			})
			if err := h(context.Background(), msg("a", "g")); !errors.Is(err, errBoom) {
				t.Fatalf("first: %v", err)
			}
			if err := h(context.Background(), msg("a", "g")); err != nil || calls.Load() != 2 {
				t.Fatalf("retry after failure: %v after %d calls; want it to run", err, calls.Load())
			}
		})
	}
}

// testReleaseAfterLease: delivery A of a message runs past its lease,
// delivery B claims the message and runs, A fails and releases its claim;
// B's claim must survive, so that delivery C does not run the handler while
// B runs.
func testReleaseAfterLease(t *testing.T, store dedupe.Store) {
	const lease = time.Second // B's claim must outlive A's release and C's claim
	ctx := mwtest.Context(t, 30*time.Second)
	aRunning, bRunning := make(chan struct{}), make(chan struct{})
	aFail, bDone := make(chan struct{}), make(chan struct{})
	failA, finishB := sync.OnceFunc(func() { close(aFail) }), sync.OnceFunc(func() { close(bDone) })
	t.Cleanup(failA)
	t.Cleanup(finishB)
	mw := mwtest.Must(dedupe.New(store, dedupe.WithLease(lease), dedupe.WithKeyFunc(func(*messaging.Message) string { return "lease" })))
	h := mw(func(_ context.Context, m *messaging.Message) error {
		switch string(m.Payload) {
		case "A":
			close(aRunning)
			<-aFail
			return errBoom
		case "B":
			close(bRunning)
			<-bDone
			return nil
		}
		t.Errorf("delivery %s ran the handler while B's claim was live", m.Payload)
		return nil
	})
	delivery := func(name string) *messaging.Message {
		return &messaging.Message{ID: "x", Topic: "t", Group: "g", Payload: []byte(name), Attempt: 1}
	}

	aErr := make(chan error, 1)
	go func() { aErr <- h(ctx, delivery("A")) }()
	<-aRunning
	// B is redelivered, as after ErrInProgress, until A's lease has expired
	// and B claims the message.
	bErr := make(chan error, 1)
	for claimed := false; !claimed; {
		go func() { bErr <- h(ctx, delivery("B")) }()
		select {
		case <-bRunning:
			claimed = true
		case err := <-bErr:
			if !errors.Is(err, dedupe.ErrInProgress) {
				t.Fatalf("B while A's claim is live: %v, want ErrInProgress", err)
			}
			time.Sleep(lease / 20) // the redelivery delay
		}
	}
	failA()
	if err := <-aErr; !errors.Is(err, errBoom) {
		t.Fatalf("A: %v, want its handler's error", err)
	}
	if err := h(ctx, delivery("C")); !errors.Is(err, dedupe.ErrInProgress) {
		t.Fatalf("C while B's claim is live: %v, want ErrInProgress", err)
	}
	finishB()
	if err := <-bErr; err != nil {
		t.Fatalf("B: %v", err)
	}
}

func TestConcurrentDeliveryIsHeldBack(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := mwtest.Must(dedupe.New(dedupe.NewMemoryStore(), dedupe.WithInProgressDelay(2*time.Second)))(func(context.Context, *messaging.Message) error {
		close(entered)
		<-release
		return nil
	})
	first := make(chan error)
	go func() { first <- h(context.Background(), msg("a", "g")) }()
	<-entered
	err := h(context.Background(), msg("a", "g"))
	if !errors.Is(err, dedupe.ErrInProgress) || messaging.IsPermanent(err) {
		t.Fatalf("concurrent duplicate: %v, want a retryable ErrInProgress", err)
	}
	if d, _ := messaging.RetryDelay(err); d != 2*time.Second {
		t.Errorf("delay %v, want 2s", d)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestStoreErrorIsNotSwallowed(t *testing.T) {
	h := mwtest.Must(dedupe.New(brokenStore{}))(func(context.Context, *messaging.Message) error {
		t.Fatal("handler ran although the store failed")
		return nil
	})
	if err := h(context.Background(), msg("a", "g")); err == nil || messaging.IsPermanent(err) {
		t.Fatalf("got %v, want a retryable error", err)
	}
}

type brokenStore struct{}

func (brokenStore) Claim(context.Context, string, time.Duration) (dedupe.State, error) {
	return 0, errors.New("store down")
}
func (brokenStore) Complete(context.Context, string, time.Duration) error { return nil }
func (brokenStore) Release(context.Context, string) error                 { return nil }

// testStore checks the TokenStore contract.
func testStore(t *testing.T, s dedupe.TokenStore, key func(string) string) {
	ctx := mwtest.Context(t, 30*time.Second)
	expect := func(k string, lease time.Duration, want dedupe.State) {
		t.Helper()
		got, err := s.Claim(ctx, key(k), lease)
		if err != nil || got != want {
			t.Fatalf("Claim(%s) = %v, %v; want %v", k, got, err, want)
		}
	}
	claim := func(k string, lease time.Duration, want dedupe.State) string {
		t.Helper()
		got, token, err := s.ClaimToken(ctx, key(k), lease)
		if err != nil || got != want || (token == "") != (want != dedupe.StateNew) {
			t.Fatalf("ClaimToken(%s) = %v, %q, %v; want %v", k, got, token, err, want)
		}
		return token
	}
	release := func(k, token string) {
		t.Helper()
		if err := s.ReleaseToken(ctx, key(k), token); err != nil {
			t.Fatalf("ReleaseToken(%s, %q): %v", k, token, err)
		}
	}
	expect("a", time.Minute, dedupe.StateNew)
	expect("a", time.Minute, dedupe.StateInProgress)
	if err := s.Release(ctx, key("a")); err != nil {
		t.Fatal(err)
	}
	expect("a", time.Minute, dedupe.StateNew)
	if err := s.Complete(ctx, key("a"), time.Minute); err != nil {
		t.Fatal(err)
	}
	expect("a", time.Minute, dedupe.StateDone)
	if err := s.Release(ctx, key("a")); err != nil {
		t.Fatal(err)
	}
	expect("a", time.Minute, dedupe.StateDone) // release does not undo done

	// A token releases its own claim only.
	tok := claim("t", time.Minute, dedupe.StateNew)
	claim("t", time.Minute, dedupe.StateInProgress)
	release("t", tok+"x")
	expect("t", time.Minute, dedupe.StateInProgress)
	release("t", tok)
	tok = claim("t", time.Minute, dedupe.StateNew)
	if err := s.Complete(ctx, key("t"), time.Minute); err != nil {
		t.Fatal(err)
	}
	release("t", tok)
	expect("t", time.Minute, dedupe.StateDone)

	// Exactly one of concurrent claims wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if st, err := s.Claim(ctx, key("race"), time.Minute); err == nil && st == dedupe.StateNew {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d concurrent claims won, want 1", n)
	}

	// Claims and records expire. Elapsed time is the subject here.
	expect("short", 50*time.Millisecond, dedupe.StateNew)
	stale := claim("stale", 50*time.Millisecond, dedupe.StateNew)
	if err := s.Complete(ctx, key("done-short"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	expect("short", time.Minute, dedupe.StateNew)
	expect("done-short", time.Minute, dedupe.StateNew)
	// The token of an expired claim does not release the next claim.
	fresh := claim("stale", time.Minute, dedupe.StateNew)
	if fresh == stale {
		t.Fatalf("two claims of one key got the token %q", fresh)
	}
	release("stale", stale)
	expect("stale", time.Minute, dedupe.StateInProgress)
	release("stale", fresh)
	expect("stale", time.Minute, dedupe.StateNew)
}

func TestMemoryStore(t *testing.T) {
	testStore(t, dedupe.NewMemoryStore(), func(k string) string { return k })
}

func TestMemoryStoreReleaseAfterLease(t *testing.T) {
	testReleaseAfterLease(t, dedupe.NewMemoryStore())
}

func redisClient(t *testing.T) goredis.UniversalClient {
	opt, err := goredis.ParseURL(redistest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisStore(t *testing.T) {
	c := redisClient(t)
	prefix := integration.UniqueName(t, "dedupe") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		for _, k := range []string{"a", "t", "race", "short", "stale", "done-short"} {
			c.Del(ctx, prefix+k)
		}
	})
	testStore(t, redisstore.NewDedupeStore(c, prefix), func(k string) string { return k })
}

// TestRedisStoreOldClaim: a claim written by an earlier version of the
// store (the value "p", without token) holds, and Release drops it.
func TestRedisStoreOldClaim(t *testing.T) {
	c := redisClient(t)
	ctx := mwtest.Context(t, 30*time.Second)
	prefix := integration.UniqueName(t, "dedupe") + ":"
	t.Cleanup(func() { c.Del(context.Background(), prefix+"old") })
	if err := c.Set(ctx, prefix+"old", "p", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	s := redisstore.NewDedupeStore(c, prefix)
	if st, _, err := s.ClaimToken(ctx, "old", time.Minute); err != nil || st != dedupe.StateInProgress {
		t.Fatalf("ClaimToken of an old claim = %v, %v; want in progress", st, err)
	}
	if err := s.Release(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Claim(ctx, "old", time.Minute); err != nil || st != dedupe.StateNew {
		t.Fatalf("Claim after Release = %v, %v; want new", st, err)
	}
}

func TestRedisStoreReleaseAfterLease(t *testing.T) {
	c := redisClient(t)
	prefix := integration.UniqueName(t, "dedupe") + ":"
	t.Cleanup(func() { c.Del(context.Background(), prefix+"lease") })
	testReleaseAfterLease(t, redisstore.NewDedupeStore(c, prefix))
}

// TestEndToEnd publishes the same message ID twice on every registered
// backend and checks that the handler runs once.
func TestEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "dedupe")
		var mu sync.Mutex
		counts := map[string]int{}
		sentinel := make(chan struct{})
		h := mwtest.Must(dedupe.New(dedupe.NewMemoryStore()))(func(_ context.Context, m *messaging.Message) error {
			mu.Lock()
			defer mu.Unlock()
			counts[string(m.Payload)]++
			if string(m.Payload) == "end" {
				close(sentinel)
			}
			return nil
		})
		mwtest.Subscribe(t, ctx, c, topic, h, messaging.Group(integration.UniqueName(t, "g")))
		id := integration.UniqueName(t, "id")
		// Same key: per-key order puts both copies before the sentinel.
		mwtest.Publish(t, ctx, c, topic, &messaging.Message{ID: id, Key: "k", Payload: []byte("dup")})
		// A broker deduplicating by ID drops the copy and says so.
		err := c.Publish(ctx, topic, &messaging.Message{ID: id, Key: "k", Payload: []byte("dup")})
		if c.Capabilities().DedupeByID != errors.Is(err, messaging.ErrDuplicate) || messaging.IgnoreDuplicates(err) != nil {
			t.Fatalf("publishing the ID again: %v (DedupeByID %v)", err, c.Capabilities().DedupeByID)
		}
		mwtest.Publish(t, ctx, c, topic, &messaging.Message{Key: "k", Payload: []byte("end")})
		select {
		case <-sentinel:
		case <-ctx.Done():
			t.Fatal("sentinel not delivered")
		}
		mu.Lock()
		defer mu.Unlock()
		if counts["dup"] != 1 {
			t.Fatalf("handler ran %d times for one ID, want 1", counts["dup"])
		}
	})
}
