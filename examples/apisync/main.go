// External API sync: a partner's HTTP API cannot push (no webhooks), so a
// poller asks it for what changed, page by page, and publishes each new
// order into a topic; it saves its cursor and the API's ETag, so a poll with
// nothing new is a cheap 304 and a restarted poller publishes only what is
// new. Downstream, a subscriber reacts to the topic as if the partner pushed.
//
//	go run ./examples/apisync                      # in-process broker
//	go run ./examples/apisync -url amqp://guest:guest@127.0.0.1:5672/
//
// This file is self-contained: copy it into your own module.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/poll"
	"github.com/msgkit/messaging/patterns/pubsub"

	// Each adapter registers its URL scheme when imported.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

// PartnerOrder is a record of the partner API.
type PartnerOrder struct {
	Seq int    `json:"seq"`
	ID  string `json:"id"`
}

// partnerAPI stands in for the partner: GET /orders?cursor=N returns the
// orders after N, three per page, with an ETag.
type partnerAPI struct {
	mu          sync.Mutex
	orders      []PartnerOrder
	notModified int
}

func (a *partnerAPI) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		seq := len(a.orders) + 1
		a.orders = append(a.orders, PartnerOrder{Seq: seq, ID: fmt.Sprintf("p-%03d", seq)})
	}
}

func (a *partnerAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	a.mu.Lock()
	defer a.mu.Unlock()
	page := poll.JSONPage[PartnerOrder]{NextCursor: strconv.Itoa(after)}
	for _, o := range a.orders {
		if o.Seq > after && len(page.Items) < 3 {
			page.Items = append(page.Items, o)
			page.NextCursor = strconv.Itoa(o.Seq)
		}
	}
	page.HasMore = len(a.orders) > after+len(page.Items)
	body, _ := json.Marshal(page)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		a.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func main() {
	url := flag.String("url", "mem://", "broker URL")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *url, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "apisync:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url string, out io.Writer) error {
	client, err := messaging.Open(ctx, url)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topic := fmt.Sprintf("partner-orders-%d", time.Now().UnixNano())
	if d, ok := client.(messaging.TopicDeleter); ok {
		defer d.DeleteTopic(context.WithoutCancel(ctx), topic)
	}
	api := &partnerAPI{}
	api.add(5)
	srv := httptest.NewServer(api)
	defer srv.Close()

	// Downstream: the CRM reacts to the topic.
	var mu sync.Mutex
	seen := map[string]bool{}
	arrived := make(chan struct{}, 1)
	sub, err := pubsub.Subscribe(ctx, client, topic, "crm", func(_ context.Context, o PartnerOrder, _ *messaging.Message) error {
		mu.Lock()
		seen[o.ID] = true
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Close()

	// The poller keeps its cursor and ETag in store (use checkpoint.NewDir
	// or a database in production, so a restart resumes).
	store := &checkpoint.Memory{}
	src := &poll.HTTPSource[PartnerOrder]{URL: srv.URL + "/orders", ItemID: func(o PartnerOrder) string { return o.ID }}
	newPoller := func() (*poll.Poller[PartnerOrder], error) {
		return poll.New[PartnerOrder]("partner-orders", src, client, topic, poll.WithStore(store))
	}
	p, err := newPoller()
	if err != nil {
		return err
	}
	for i := 1; i <= 3; i++ { // the third poll sends the ETag of the second
		n, err := p.PollOnce(ctx)
		if err != nil {
			return err
		}
		cursor, _ := p.Cursor(ctx)
		fmt.Fprintf(out, "poll %d: published %d orders, cursor %s\n", i, n, cursor)
	}
	api.mu.Lock()
	fmt.Fprintf(out, "the API answered %d poll(s) with 304 Not Modified\n", api.notModified)
	api.mu.Unlock()

	api.add(2) // while the poller restarts
	if p, err = newPoller(); err != nil {
		return err
	}
	n, err := p.PollOnce(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "after a restart: published %d new orders\n", n)

	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == 7 {
			break
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return fmt.Errorf("the CRM got %d of 7 orders: %w", got, ctx.Err())
		}
	}
	fmt.Fprintln(out, "the CRM received all 7 partner orders")
	return nil
}
