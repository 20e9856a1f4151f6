package rabbitmqtest_test

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// asyncResults collects the PublishAsync callbacks of a test, counting
// each message's.
type asyncResults struct {
	mu    sync.Mutex
	calls map[*messaging.Message]int
	errs  map[*messaging.Message]error
}

func newAsyncResults() *asyncResults {
	return &asyncResults{calls: map[*messaging.Message]int{}, errs: map[*messaging.Message]error{}}
}

func (r *asyncResults) done(m *messaging.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[m]++
	r.errs[m] = err
}

func (r *asyncResults) result(m *messaging.Message) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[m], r.errs[m]
}

// TestPublishHeaderRabbitMQRoutes: an application header named like the
// ones RabbitMQ reads as extra routing keys ("CC", "BCC": it refuses a
// string there and closes the channel) is carried verbatim, by Publish
// and PublishAsync alike, and never fails the messages queued around it.
func TestPublishHeaderRabbitMQRoutes(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topic, group := integration.UniqueName(t, "cc"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	want := map[string]messaging.Header{} // ID -> header, of every message sent
	for _, name := range []string{"CC", "BCC"} {
		res := newAsyncResults()
		var msgs []*messaging.Message
		// One key: one lane, so the message shares a batch (a confirm
		// channel) with the ones queued around it.
		for i := range 50 {
			m := messaging.NewMessage([]byte("m"))
			m.Key = "k"
			if i == 25 {
				m.Header = messaging.Header{name: "elsewhere", "other": "v"}
			}
			msgs = append(msgs, m)
			c.PublishAsync(ctx, topic, m, res.done)
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			want[m.ID] = m.Header
			if n, err := res.result(m); n != 1 || err != nil {
				t.Errorf("PublishAsync, header %q in message 25: message %d: %d callbacks, last %v; want one, nil", name, i, n, err)
			}
		}
		m := &messaging.Message{Payload: []byte("x"), Header: messaging.Header{name: "sync"}}
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Errorf("Publish with header %q: %v", name, err)
		}
		want[m.ID] = m.Header
	}
	if t.Failed() {
		return
	}
	got := make(chan *messaging.Message, len(want))
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error { got <- m; return nil }, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for len(want) > 0 {
		select {
		case m := <-got:
			h, ok := want[m.ID]
			if !ok {
				continue // a duplicate
			}
			delete(want, m.ID)
			if !maps.Equal(m.Header, h) {
				t.Errorf("message %s: header %v, want %v", m.ID, m.Header, h)
			}
		case <-ctx.Done():
			t.Fatalf("%d messages not delivered", len(want))
		}
	}
}
