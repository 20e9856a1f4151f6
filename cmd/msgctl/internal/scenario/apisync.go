package scenario

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/poll"
	"github.com/msgkit/messaging/patterns/pubsub"
)

// PartnerOrder is a record of the partner API.
type PartnerOrder struct {
	Seq    int    `json:"seq"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// PartnerAPI is a stand-in for a partner's HTTP API without webhooks:
// GET /orders?cursor=<seq> returns the orders after seq, a page at a time,
// as {"items": [...], "next_cursor": "...", "has_more": bool}, with an ETag;
// a request with a matching If-None-Match gets 304 Not Modified. It is safe
// for concurrent use.
type PartnerAPI struct {
	mu       sync.Mutex
	orders   []PartnerOrder
	pageSize int
	requests map[int]int // status code -> count
}

// NewPartnerAPI returns an API with n orders and the given page size.
func NewPartnerAPI(n, pageSize int) *PartnerAPI {
	a := &PartnerAPI{pageSize: pageSize, requests: map[int]int{}}
	a.Add(n)
	return a
}

// Add appends n new orders.
func (a *PartnerAPI) Add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		seq := len(a.orders) + 1
		a.orders = append(a.orders, PartnerOrder{Seq: seq, ID: fmt.Sprintf("p-%04d", seq), Status: "confirmed"})
	}
}

// Requests returns how many answers had the given HTTP status.
func (a *PartnerAPI) Requests(status int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests[status]
}

// ServeHTTP implements the API.
func (a *PartnerAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/orders" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	after := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			http.Error(w, "bad cursor", http.StatusBadRequest)
			return
		}
		after = n
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var page poll.JSONPage[PartnerOrder]
	for _, o := range a.orders {
		if o.Seq > after && len(page.Items) < a.pageSize {
			page.Items = append(page.Items, o)
		}
	}
	page.NextCursor = strconv.Itoa(after)
	if len(page.Items) > 0 {
		page.NextCursor = strconv.Itoa(page.Items[len(page.Items)-1].Seq)
	}
	page.HasMore = len(a.orders) > 0 && a.orders[len(a.orders)-1].Seq > after+len(page.Items)
	body, _ := json.Marshal(page)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		a.requests[http.StatusNotModified]++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	a.requests[http.StatusOK]++
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// APISync keeps a topic in sync with a partner API that cannot push: a
// poller copies new orders into the topic page by page, saving its cursor
// and ETag; a poll with nothing new is answered 304; after a restart (a new
// poller on the same checkpoint store) only orders added meanwhile are
// published. A subscriber checks that every order arrived exactly once.
// store keeps the cursor (nil: in memory).
func APISync(ctx context.Context, env *Env, store checkpoint.Store) error {
	const tag = "apisync"
	topic := env.Topic("partner.orders")
	defer env.Cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if store == nil {
		store = &checkpoint.Memory{}
	}
	initial, added := 10, 5
	if env.Short {
		initial, added = 5, 3
	}
	api := NewPartnerAPI(initial, 3)
	srv := httptest.NewServer(api)
	defer srv.Close()
	env.Printf(tag, "partner API (no webhooks) at %s/orders with %d orders", srv.URL, initial)

	got := newNotifier()
	sub, err := pubsub.Subscribe(ctx, env.Client, topic, env.Group("crm"), func(_ context.Context, o PartnerOrder, m *messaging.Message) error {
		got.add("deliveries", 1)
		got.add(m.ID, 1)
		if got.get(m.ID) == 1 {
			got.add("distinct", 1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Close()

	src := &poll.HTTPSource[PartnerOrder]{URL: srv.URL + "/orders", ItemID: func(o PartnerOrder) string { return o.ID }}
	newPoller := func() (*poll.Poller[PartnerOrder], error) {
		return poll.New[PartnerOrder](env.Group("partner-orders"), src, env.Client, topic, poll.WithStore(store))
	}
	p, err := newPoller()
	if err != nil {
		return err
	}
	n, err := p.PollOnce(ctx)
	if err != nil {
		return err
	}
	cur, _ := p.Cursor(ctx)
	env.Printf(tag, "poll 1: published %d orders (cursor now %s)", n, cur)
	for i := 2; i <= 3; i++ {
		if n, err = p.PollOnce(ctx); err != nil {
			return err
		}
		env.Printf(tag, "poll %d: published %d (API answers so far: %d x 200 OK, %d x 304 Not Modified)", i, n, api.Requests(http.StatusOK), api.Requests(http.StatusNotModified))
		if n != 0 {
			return fmt.Errorf("scenario: apisync: poll %d published %d, want 0", i, n)
		}
	}
	if api.Requests(http.StatusNotModified) == 0 {
		return fmt.Errorf("scenario: apisync: the poller never sent a matching ETag (no 304 answer)")
	}
	env.Printf(tag, "poller restarts; meanwhile the partner adds %d orders", added)
	api.Add(added)
	p, err = newPoller()
	if err != nil {
		return err
	}
	n, err = p.PollOnce(ctx)
	if err != nil {
		return err
	}
	cur, _ = p.Cursor(ctx)
	env.Printf(tag, "poll 4 (after restart): published %d orders (cursor now %s)", n, cur)
	if n != added {
		return fmt.Errorf("scenario: apisync: after restart published %d, want %d", n, added)
	}

	total := initial + added
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := waitFor(wctx, got.sig, func() bool { return got.get("distinct") >= total }); err != nil {
		return fmt.Errorf("scenario: apisync: subscriber got %d of %d orders: %w", got.get("distinct"), total, err)
	}
	if d := got.get("deliveries"); d != total {
		return fmt.Errorf("scenario: apisync: subscriber got %d deliveries for %d orders (duplicates)", d, total)
	}
	env.Printf(tag, "the topic holds all %d partner orders, each delivered once", total)
	return nil
}
