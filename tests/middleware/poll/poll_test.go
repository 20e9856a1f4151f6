package poll_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/redis/redisstore"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/middleware/poll"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// api is an external system with a growing list of records, paged by index.
type api struct {
	mu       sync.Mutex
	items    []poll.Item
	page     int
	failures int // fail this many fetches first
	fetches  []time.Time
	cursors  []string
	notify   chan struct{} // if set, gets a value after each fetch
}

func (a *api) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		i := len(a.items)
		a.items = append(a.items, poll.Item{ID: "item-" + strconv.Itoa(i), Payload: []byte(strconv.Itoa(i))})
	}
}

func (a *api) fetch(_ context.Context, cursor string) ([]poll.Item, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fetches = append(a.fetches, time.Now())
	a.cursors = append(a.cursors, cursor)
	if a.notify != nil {
		a.notify <- struct{}{}
	}
	if a.failures > 0 {
		a.failures--
		return nil, "", errors.New("api unavailable")
	}
	start := 0
	if cursor != "" {
		start, _ = strconv.Atoi(cursor)
	}
	end := min(start+a.page, len(a.items))
	return append([]poll.Item(nil), a.items[start:end]...), strconv.Itoa(end), nil
}

func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, "item-"+strconv.Itoa(i))
	}
	return out
}

// TestSourceDeliversInOrderAndResumes runs with the cursor in memory and in
// files (checkpoint.Dir, which the package doc recommends for restarts).
func TestSourceDeliversInOrderAndResumes(t *testing.T) {
	dir, err := checkpoint.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, cursors := range map[string]checkpoint.Store{"memory": &checkpoint.Memory{}, "dir": dir} {
		t.Run(name, func(t *testing.T) { sourceDeliversInOrderAndResumes(t, cursors) })
	}
}

func sourceDeliversInOrderAndResumes(t *testing.T, cursors checkpoint.Store) {
	ctx := mwtest.Context(t, time.Minute)
	a := &api{page: 3}
	a.add(10)
	seen := dedupe.NewMemoryStore()
	src := mustSource(t, a.fetch, poll.WithInterval(10*time.Millisecond), poll.WithStore(cursors), poll.WithSeen(seen))
	col := integration.NewCollector()
	sub, err := src.Subscribe(ctx, "orders", col.Handler(), messaging.Group("sync"))
	if err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 10, 10*time.Second)
	for i, m := range col.Messages() {
		if m.ID != "item-"+strconv.Itoa(i) || m.Topic != "orders" || m.Group != "sync" || m.Attempt != 1 {
			t.Fatalf("delivery %d: %+v", i, m)
		}
	}
	if _, err := src.Subscribe(ctx, "orders", col.Handler(), messaging.Group("sync")); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("second poller on the same cursor: %v, want ErrInvalidOption", err)
	}
	_ = sub.Close()
	_ = src.Close()
	if c, _, err := cursors.Load(ctx, "orders/sync"); c.Position != "10" {
		t.Fatalf("saved cursor %q (%v), want 10", c.Position, err)
	}

	// A new Source with the same stores resumes after item 9.
	a.add(5)
	src2 := mustSource(t, a.fetch, poll.WithInterval(10*time.Millisecond), poll.WithStore(cursors), poll.WithSeen(seen))
	defer src2.Close()
	col2 := integration.NewCollector()
	if _, err := src2.Subscribe(ctx, "orders", col2.Handler(), messaging.Group("sync")); err != nil {
		t.Fatal(err)
	}
	col2.WaitDistinct(t, 5, 10*time.Second)
	col2.Report(t, ids(10, 15))
	if n := col2.Total(); n != 5 {
		t.Fatalf("after restart %d deliveries, want only the 5 new items", n)
	}
}

func TestSourceSkipsSeenItems(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	// An API without a cursor: every fetch returns everything so far.
	var mu sync.Mutex
	var items []poll.Item
	fetches := make(chan struct{}, 100)
	fetch := func(context.Context, string) ([]poll.Item, string, error) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case fetches <- struct{}{}:
		default:
		}
		return append([]poll.Item(nil), items...), "", nil
	}
	add := func(id string) {
		mu.Lock()
		items = append(items, poll.Item{ID: id})
		mu.Unlock()
	}
	add("a")
	add("b")
	src := mustSource(t, fetch, poll.WithInterval(5*time.Millisecond), poll.WithMaxInterval(5*time.Millisecond))
	defer src.Close()
	col := integration.NewCollector()
	if _, err := src.Subscribe(ctx, "t", col.Handler()); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 2, 10*time.Second)
	for range 3 { // several more fetches of the same items
		<-fetches
	}
	add("c")
	col.WaitDistinct(t, 3, 10*time.Second)
	for range 3 {
		<-fetches
	}
	if d := col.Duplicates(); d != 0 {
		t.Fatalf("%d seen items delivered again", d)
	}
}

func TestSourceRedeliversAndComposesWithRetry(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	a := &api{page: 10}
	a.add(2)
	src := mustSource(t, a.fetch, poll.WithInterval(5*time.Millisecond))
	defer src.Close()
	col := integration.NewCollector()
	var mu sync.Mutex
	var attempts []int
	h := mwtest.Must(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond)))(
		func(_ context.Context, m *messaging.Message) error {
			if m.ID == "item-0" {
				mu.Lock()
				attempts = append(attempts, m.Attempt)
				mu.Unlock()
				if m.Attempt < 3 {
					return errors.New("flaky")
				}
			}
			col.Add(m)
			return nil
		})
	if _, err := src.Subscribe(ctx, "t", h); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 2, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 || attempts[2] != 3 {
		t.Fatalf("attempts of the flaky item %v, want [1 2 3]", attempts)
	}
	if got := col.Messages(); got[0].ID != "item-0" {
		t.Fatalf("item-1 overtook the retried item-0: order lost")
	}
}

func TestSourceBacksOff(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	a := &api{page: 10, failures: 2, notify: make(chan struct{}, 100)}
	a.add(1)
	src := mustSource(t, a.fetch, poll.WithInterval(20*time.Millisecond), poll.WithMaxInterval(80*time.Millisecond), poll.WithJitter(0))
	defer src.Close()
	col := integration.NewCollector()
	if _, err := src.Subscribe(ctx, "t", col.Handler()); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		select {
		case <-a.notify:
		case <-ctx.Done():
			t.Fatal("fewer than 8 fetches")
		}
	}
	_ = src.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.fetches) < 8 {
		t.Fatalf("only %d fetches", len(a.fetches))
	}
	gap := func(i int) time.Duration { return a.fetches[i].Sub(a.fetches[i-1]) }
	// fetch 0 fails, wait 20; fetch 1 fails, wait 40; fetch 2 brings the
	// item, fetch 3 (at once) is empty, wait 20, 40, 80, 80.
	want := []time.Duration{20, 40, 0, 20, 40, 80, 80}
	for i, w := range want {
		w *= time.Millisecond
		if g := gap(i + 1); g < w || g > w+150*time.Millisecond { // loose upper bound: shared CPUs
			t.Errorf("wait before fetch %d: %v, want about %v", i+1, g, w)
		}
	}
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

func TestRedisStoresSurviveRestart(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	rc := redisClient(t)
	prefix := integration.UniqueName(t, "poll") + ":"
	t.Cleanup(func() {
		keys, _ := rc.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(context.Background(), keys...)
		}
	})
	a := &api{page: 4}
	a.add(6)
	newSource := func() *poll.Source {
		return mustSource(t, a.fetch, poll.WithInterval(10*time.Millisecond),
			poll.WithStore(redisstore.NewCheckpointStore(rc, prefix+"cursor:")),
			poll.WithSeen(redisstore.NewDedupeStore(rc, prefix+"seen:")))
	}
	src := newSource()
	col := integration.NewCollector()
	if _, err := src.Subscribe(ctx, "t", col.Handler()); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 6, 10*time.Second)
	_ = src.Close()
	a.add(2)
	src2 := newSource()
	defer src2.Close()
	col2 := integration.NewCollector()
	if _, err := src2.Subscribe(ctx, "t", col2.Handler()); err != nil {
		t.Fatal(err)
	}
	col2.WaitDistinct(t, 2, 10*time.Second)
	col2.Report(t, ids(6, 8))
	if col2.Total() != 2 {
		t.Fatalf("restarted source delivered %d, want the 2 new items only", col2.Total())
	}
}

func TestSourceIsAConsumerForMiddlewareAndClose(t *testing.T) {
	src := mustSource(t, func(context.Context, string) ([]poll.Item, string, error) { return nil, "", nil })
	var c messaging.Consumer = src
	_ = c.Close()
	if _, err := src.Subscribe(context.Background(), "t", func(context.Context, *messaging.Message) error { return nil }); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// TestSourceKeepsInterruptedLastAttempt: with MaxAttempts(1), an item whose
// handler returns its context's error because the subscription stops is not
// given up: the next subscription of the group starts with it.
func TestSourceKeepsInterruptedLastAttempt(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	a := &api{page: 3}
	a.add(3)
	src := mustSource(t, a.fetch, poll.WithInterval(10*time.Millisecond))
	defer src.Close()
	started := make(chan struct{})
	var once sync.Once
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := src.Subscribe(subCtx, "orders", func(ctx context.Context, _ *messaging.Message) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group("sync"), messaging.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no item delivered")
	}
	cancel()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not end within 10s of its context")
	}
	col := integration.NewCollector()
	if _, err := src.Subscribe(ctx, "orders", col.Handler(), messaging.Group("sync"), messaging.MaxAttempts(1)); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 3, 10*time.Second)
	col.Report(t, ids(0, 3))
}
