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

func TestFailureReleasesClaim(t *testing.T) {
	var calls atomic.Int32
	h := mwtest.Must(dedupe.New(dedupe.NewMemoryStore()))(func(context.Context, *messaging.Message) error {
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

// testStore checks the Store contract.
func testStore(t *testing.T, s dedupe.Store, key func(string) string) {
	ctx := mwtest.Context(t, 30*time.Second)
	expect := func(k string, lease time.Duration, want dedupe.State) {
		t.Helper()
		got, err := s.Claim(ctx, key(k), lease)
		if err != nil || got != want {
			t.Fatalf("Claim(%s) = %v, %v; want %v", k, got, err, want)
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
	if err := s.Complete(ctx, key("done-short"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	expect("short", time.Minute, dedupe.StateNew)
	expect("done-short", time.Minute, dedupe.StateNew)
}

func TestMemoryStore(t *testing.T) {
	testStore(t, dedupe.NewMemoryStore(), func(k string) string { return k })
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
		for _, k := range []string{"a", "race", "short", "done-short"} {
			c.Del(ctx, prefix+k)
		}
	})
	testStore(t, redisstore.NewDedupeStore(c, prefix), func(k string) string { return k })
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
