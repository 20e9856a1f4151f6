package poll_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/middleware/poll"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// list is an external system holding a fixed list of items, "item-0" to
// "item-<n-1>"; every fetch returns all the items after the cursor (an
// index) and the cursor after the last one.
type list []poll.Item

func newList(n int) list {
	l := make(list, n)
	for i := range l {
		l[i] = poll.Item{ID: "item-" + strconv.Itoa(i)}
	}
	return l
}

func (l list) fetch(_ context.Context, cursor string) ([]poll.Item, string, error) {
	start, _ := strconv.Atoi(cursor) // "" is 0
	return append([]poll.Item(nil), l[start:]...), strconv.Itoa(len(l)), nil
}

func itemIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, "item-"+strconv.Itoa(i))
	}
	return out
}

func messageIDs(msgs []*messaging.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func mustSource(t *testing.T, fetch poll.FetchFunc, opts ...poll.Option) *poll.Source {
	t.Helper()
	src, err := poll.NewSource(fetch, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// sharedStores returns the options of Sources that share a cursor store
// and a seen store (in memory), as one process's successive Sources do.
func sharedStores() []poll.Option {
	return []poll.Option{poll.WithStore(&checkpoint.Memory{}), poll.WithSeen(dedupe.NewMemoryStore()), poll.WithInterval(10 * time.Millisecond)}
}

// receive returns the next value of c, failing t if none comes within 10s.
func receive(t *testing.T, c <-chan string, what string) string {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		return ""
	}
}

// TestSourceWithoutGroupInDir: a subscription without Group keeps its
// cursor under the topic's name, which checkpoint.Dir accepts
// (<dir>/orders.json); the items are delivered and the cursor saved.
func TestSourceWithoutGroupInDir(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	dir, err := checkpoint.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := mustSource(t, newList(3).fetch, poll.WithStore(dir), poll.WithInterval(10*time.Millisecond))
	defer src.Close()
	col := integration.NewCollector()
	sub, err := src.Subscribe(ctx, "orders", col.Handler())
	if err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 3, 10*time.Second)
	col.Report(t, itemIDs(0, 3))
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if cp, ok, err := dir.Load(ctx, "orders"); err != nil || !ok || cp.Position != "3" {
		t.Fatalf(`checkpoint "orders": %+v, ok=%v, err=%v; want position 3`, cp, ok, err)
	}
}

// TestSourceCloseHandsOutNoFurtherItem: Close while the handler of the
// first of 100 fetched items runs waits for that handler and hands no
// further item to the handler; the next subscription of the group starts
// with the second item.
func TestSourceCloseHandsOutNoFurtherItem(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	l := newList(100)
	opts := sharedStores()
	src := mustSource(t, l.fetch, opts...)
	defer src.Close()
	started, unblock := make(chan string, len(l)), make(chan struct{}, len(l))
	defer close(unblock) // before src.Close: lets any handler still blocked return
	sub, err := src.Subscribe(ctx, "orders", func(_ context.Context, m *messaging.Message) error {
		started <- m.ID
		<-unblock
		return nil
	}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	if id := receive(t, started, "delivery"); id != "item-0" {
		t.Fatalf("first delivery %s, want item-0", id)
	}
	closed := make(chan struct{})
	go func() { _ = src.Close(); close(closed) }()
	// Wait until Close has stopped the subscription (its fetch context is
	// done) before the handler returns.
	select {
	case <-sub.(interface{ FetchContext() context.Context }).FetchContext().Done():
	case <-ctx.Done():
		t.Fatal("Close did not stop the subscription")
	}
	select {
	case <-closed:
		t.Fatal("Close returned while item-0's handler was running")
	default:
	}
	unblock <- struct{}{} // item-0's handler returns
	select {
	case <-closed:
	case id := <-started:
		t.Fatalf("%s was handed to the handler after Close", id)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s of the handler in flight")
	}
	if n := len(started); n > 0 {
		t.Fatalf("%d items were handed to the handler after Close", n)
	}

	src2 := mustSource(t, l.fetch, opts...)
	defer src2.Close()
	col := integration.NewCollector()
	if _, err := src2.Subscribe(ctx, "orders", col.Handler(), messaging.Group("g")); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 99, 10*time.Second)
	if got := messageIDs(col.Messages()); !slices.Equal(got, itemIDs(1, 100)) {
		t.Fatalf("the next subscription delivered %v, want item-1 to item-99 once each", got)
	}
}

// TestSourceShutdownHandsOutNoItemAfterItsContext: once Shutdown's context
// has ended (and Shutdown gave up on the handler in flight), no further item
// is handed to the handler, even when the handler in flight then returns
// nil.
func TestSourceShutdownHandsOutNoItemAfterItsContext(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	src := mustSource(t, newList(100).fetch, poll.WithInterval(10*time.Millisecond))
	defer src.Close()
	started, unblock := make(chan string, 100), make(chan struct{})
	sub, err := src.Subscribe(ctx, "orders", func(_ context.Context, m *messaging.Message) error {
		started <- m.ID
		<-unblock // a handler that finishes its work whatever its context says
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	receive(t, started, "delivery")
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := sub.Shutdown(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an ended context and a handler running: %v, want context.Canceled", err)
	}
	close(unblock)
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not end within 10s of its handler")
	}
	if n := len(started); n > 0 {
		t.Fatalf("%d items were handed to the handler after Shutdown's context ended (first %s)", n, <-started)
	}
}

// TestSourceRestartAfterCrashSkipsHandledItems: a Source "crashes" while
// the handler of item-2 runs (it never returns; the Source is not closed);
// a new Source on the same stores delivers item-2 to item-4, not the items
// that were already handled.
func TestSourceRestartAfterCrashSkipsHandledItems(t *testing.T) {
	ctx := mwtest.Context(t, time.Minute)
	l := newList(5)
	opts := sharedStores()
	crashed := mustSource(t, l.fetch, opts...)
	defer crashed.Close()
	hang := make(chan struct{})
	defer close(hang) // before crashed.Close
	started := make(chan string, 2*len(l))
	if _, err := crashed.Subscribe(ctx, "orders", func(_ context.Context, m *messaging.Message) error {
		started <- m.ID
		if m.ID == "item-2" {
			<-hang
		}
		return nil
	}, messaging.Group("g")); err != nil {
		t.Fatal(err)
	}
	for _, want := range itemIDs(0, 3) {
		if id := receive(t, started, want); id != want {
			t.Fatalf("delivery %s, want %s", id, want)
		}
	}

	restarted := mustSource(t, l.fetch, opts...)
	defer restarted.Close()
	col := integration.NewCollector()
	if _, err := restarted.Subscribe(ctx, "orders", col.Handler(), messaging.Group("g")); err != nil {
		t.Fatal(err)
	}
	// Items come in order: once item-4 is in, every other one is.
	if !col.Wait(10*time.Second, func(c *integration.Collector) bool { return c.Count("item-4") > 0 }) {
		t.Fatalf("after 10s the restarted Source delivered %v, want item-2 to item-4", messageIDs(col.Messages()))
	}
	if got := messageIDs(col.Messages()); !slices.Equal(got, itemIDs(2, 5)) {
		t.Fatalf("the restarted Source delivered %v, want %v (item-0 and item-1 were handled before the crash)", got, itemIDs(2, 5))
	}
}

// TestSourceSharesItsSeenStoreWithDedupe: the Source's seen keys differ
// from dedupe.DefaultKey, so one store serves both the Source (WithSeen)
// and the dedupe middleware around its handler.
func TestSourceSharesItsSeenStoreWithDedupe(t *testing.T) {
	for name, opts := range map[string][]messaging.SubscribeOption{"group": {messaging.Group("g")}, "no group": nil} {
		t.Run(name, func(t *testing.T) {
			ctx := mwtest.Context(t, time.Minute)
			seen := dedupe.NewMemoryStore()
			src := mustSource(t, newList(3).fetch, poll.WithSeen(seen), poll.WithInterval(10*time.Millisecond))
			defer src.Close()
			col := integration.NewCollector()
			h := mwtest.Must(dedupe.New(seen, dedupe.WithInProgressDelay(10*time.Millisecond)))(col.Handler())
			if _, err := src.Subscribe(ctx, "orders", h, opts...); err != nil {
				t.Fatal(err)
			}
			col.WaitDistinct(t, 3, 5*time.Second)
			col.Report(t, itemIDs(0, 3))
		})
	}
}

// delivered subscribes h to a Source over l polling hourly, and returns the
// message h acknowledged first.
func delivered(t *testing.T, l list, h func(*messaging.Message) error) *messaging.Message {
	t.Helper()
	src := mustSource(t, l.fetch, poll.WithInterval(time.Hour), poll.WithMaxInterval(time.Hour))
	t.Cleanup(func() { _ = src.Close() })
	acked := make(chan *messaging.Message, 1)
	sub, err := src.Subscribe(t.Context(), "items", func(_ context.Context, m *messaging.Message) error {
		if err := h(m); err != nil {
			return err
		}
		select {
		case acked <- m:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case m := <-acked:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no item acknowledged within 10s")
		return nil
	}
}

// TestSourceMessageCarriesItem: the message of an item carries its ID,
// key, payload and headers.
func TestSourceMessageCarriesItem(t *testing.T) {
	l := list{{ID: "a", Key: "k", Payload: []byte("p"), Header: messaging.Header{"h": "v"}}}
	m := delivered(t, l, func(*messaging.Message) error { return nil })
	if m.ID != "a" || m.Key != "k" || string(m.Payload) != "p" || m.Header["h"] != "v" || m.Topic != "items" {
		t.Fatalf("message %+v does not carry item a", m)
	}
}

// TestSourceKeepsHandlerRetryDelay: an item whose handler failed with a
// RetryAfter delay is redelivered after that delay, not the Source's
// backoff (an hour here).
func TestSourceKeepsHandlerRetryDelay(t *testing.T) {
	m := delivered(t, newList(1), func(m *messaging.Message) error {
		if m.Attempt == 1 {
			return messaging.RetryAfter(errors.New("not yet"), time.Millisecond)
		}
		return nil
	})
	if m.Attempt != 2 {
		t.Fatalf("acknowledged at attempt %d, want 2", m.Attempt)
	}
}
