package poll_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/poll"
)

type rec struct {
	ID string `json:"id"`
}

// api serves records r-1..r-n after ?cursor=k, pageSize per page, with a
// weak ETag of the answer; it counts 304s.
type api struct {
	mu          sync.Mutex
	n, pageSize int
	notModified int
	fail        bool
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	after, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	var page poll.JSONPage[rec]
	last := after
	for i := after + 1; i <= a.n && len(page.Items) < a.pageSize; i++ {
		page.Items = append(page.Items, rec{ID: fmt.Sprintf("r-%d", i)})
		last = i
	}
	page.NextCursor = strconv.Itoa(last)
	page.HasMore = last < a.n
	etag := fmt.Sprintf(`"%d-%d"`, after, a.n)
	if r.Header.Get("If-None-Match") == etag {
		a.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	_ = json.NewEncoder(w).Encode(page)
}

func (a *api) set(f func(a *api)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func TestPollerSyncsAndResumesWithoutDuplicates(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		ctx := t.Context()
		tp := integration.UniqueName(t, "sync")
		t.Cleanup(func() {
			if d, ok := c.(messaging.TopicDeleter); ok {
				_ = d.DeleteTopic(context.Background(), tp)
			}
		})
		a := &api{n: 7, pageSize: 3}
		srv := httptest.NewServer(a)
		t.Cleanup(srv.Close)
		col := integration.NewCollector()
		sub, err := c.Subscribe(ctx, tp, col.Handler(), messaging.Group(integration.UniqueName(t, "g")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })

		store, _ := checkpoint.NewDir(t.TempDir())
		name := integration.UniqueName(t, "poller")
		src := &poll.HTTPSource[rec]{URL: srv.URL, ItemID: func(r rec) string { return r.ID }}
		newPoller := func() *poll.Poller[rec] {
			p, err := poll.New[rec](name, src, c, tp, poll.WithStore(store))
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		p := newPoller()
		if n, err := p.PollOnce(ctx); err != nil || n != 7 {
			t.Fatalf("first poll: %d, %v; want 7", n, err)
		}
		for range 2 {
			if n, err := p.PollOnce(ctx); err != nil || n != 0 {
				t.Fatalf("idle poll: %d, %v; want 0", n, err)
			}
		}
		a.set(func(a *api) {
			if a.notModified == 0 {
				t.Error("the poller never got a 304: ETag not sent back")
			}
		})

		// Failures are reported with the status and change nothing.
		a.set(func(a *api) { a.fail = true })
		if _, err := p.PollOnce(ctx); !errors.Is(err, poll.ErrHTTPStatus) {
			t.Fatalf("err = %v, want ErrHTTPStatus", err)
		}
		a.set(func(a *api) { a.fail = false; a.n = 11 })

		// Restart: a new poller on the same store publishes only the new.
		p = newPoller()
		if n, err := p.PollOnce(ctx); err != nil || n != 4 {
			t.Fatalf("after restart: %d, %v; want 4", n, err)
		}
		var ids []string
		for i := 1; i <= 11; i++ {
			ids = append(ids, fmt.Sprintf("r-%d", i))
		}
		col.WaitDistinct(t, 11, h.Timeout)
		if dups := col.Report(t, ids); dups != 0 {
			t.Errorf("%d duplicates", dups)
		}
	})
}

func TestRunPollsUntilCancelled(t *testing.T) {
	h, _ := integration.LookupHarness("memory")
	c := h.Client(t)
	tp := integration.UniqueName(t, "run")
	var calls sync.WaitGroup
	calls.Add(3)
	var n int
	var mu sync.Mutex
	src := poll.SourceFunc[rec](func(ctx context.Context, cursor, etag string) (poll.Page[rec], error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n <= 3 {
			defer calls.Done()
		}
		return poll.Page[rec]{Cursor: cursor, NotModified: true}, nil
	})
	p, err := poll.New[rec]("run", src, c, tp, poll.WithInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	calls.Wait() // three polls happened
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	h, _ := integration.LookupHarness("memory")
	c := h.Client(t)
	src := poll.SourceFunc[rec](func(context.Context, string, string) (poll.Page[rec], error) { return poll.Page[rec]{}, nil })
	for _, tc := range []struct {
		name, poller, topic string
		opts                []poll.Option
	}{
		{"bad name", "a b", "t", nil},
		{"bad topic", "p", "", nil},
		{"bad interval", "p", "t", []poll.Option{poll.WithInterval(0)}},
	} {
		if _, err := poll.New[rec](tc.poller, src, c, tc.topic, tc.opts...); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// An item without an ID is an error, not a message with a random ID.
	noID := poll.SourceFunc[rec](func(context.Context, string, string) (poll.Page[rec], error) {
		return poll.Page[rec]{Items: []poll.Item[rec]{{Value: rec{}}}}, nil
	})
	p, _ := poll.New[rec]("p", noID, c, "t")
	if _, err := p.PollOnce(t.Context()); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("item without ID: %v", err)
	}
}
