package reqreply_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/reqreply"
)

// published is a client that records the topics it publishes to.
type published struct {
	messaging.Client
	mu     sync.Mutex
	topics []string
}

func (c *published) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	c.mu.Lock()
	c.topics = append(c.topics, topic)
	c.mu.Unlock()
	return c.Client.Publish(ctx, topic, msgs...)
}

func (c *published) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.topics...)
}

// results is a middleware sending each handled message and its result.
type result struct {
	m   *messaging.Message
	err error
}

func results() (messaging.Middleware, <-chan result) {
	ch := make(chan result, 16)
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			err := next(ctx, m)
			ch <- result{m, err}
			return err
		}
	}, ch
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request handled within 10s")
		return result{}
	}
}

// TestTopicServeDropsExpiredRequests: over topics, a request whose caller's
// deadline (HeaderDeadline) has passed is dropped without calling the
// handler; the middleware sees it handled, and no reply is sent.
func TestTopicServeDropsExpiredRequests(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	tp := topic(t, c, "expired")
	var calls atomic.Int32
	mw, handled := results()
	pc := &published{Client: c}
	sub, err := reqreply.Serve(ctx, pc, tp, func(_ context.Context, r req) (resp, error) {
		calls.Add(1)
		return resp{Sum: r.A + r.B}, nil
	}, reqreply.WithMiddleware(mw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	payload, _ := json.Marshal(req{A: 1, B: 2})
	m := &messaging.Message{Payload: payload, Header: messaging.Header{
		reqreply.HeaderReplyTo:       "reply.nobody",
		reqreply.HeaderCorrelationID: "c1",
		reqreply.HeaderDeadline:      time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano),
	}}
	mwtest.Publish(t, ctx, c, tp, m)
	if r := await(t, handled); r.err != nil {
		t.Fatalf("expired request: %v, want nil (handled: dropped)", r.err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times for an expired request, want 0", n)
	}
	if got := pc.got(); len(got) != 0 {
		t.Errorf("replies published to %v for an expired request, want none", got)
	}
}

// TestServeDefaultGroup: without WithGroup, Serve consumes as the group
// "reqreply.<topic>", so that servers of a topic share its requests.
func TestServeDefaultGroup(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, 30*time.Second)
	tp := topic(t, c, "group")
	mw, handled := results()
	sub, err := reqreply.Serve(ctx, c, tp, func(_ context.Context, r req) (resp, error) {
		return resp{Sum: r.A + r.B}, nil
	}, reqreply.WithMiddleware(mw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	r := newRequester(t, c, reqreply.WithoutNative())
	if got, err := r.Request(ctx, tp, req{A: 1, B: 2}); err != nil || got.Sum != 3 {
		t.Fatalf("request: %v, %v", got, err)
	}
	if g := await(t, handled).m.Group; g != "reqreply."+tp {
		t.Fatalf("request consumed as group %q, want %q", g, "reqreply."+tp)
	}
}

// deleter is a client that records the topics deleted through it.
type deleter struct {
	messaging.Client
	mu      sync.Mutex
	deleted []string
}

func (c *deleter) DeleteTopic(ctx context.Context, topic string) error {
	c.mu.Lock()
	c.deleted = append(c.deleted, topic)
	c.mu.Unlock()
	return c.Client.(messaging.TopicDeleter).DeleteTopic(ctx, topic)
}

// TestCloseDeletesReplyTopic: Close deletes the Requester's reply topic
// when the client is a TopicDeleter.
func TestCloseDeletesReplyTopic(t *testing.T) {
	c := &deleter{Client: mwtest.Memory(t)}
	r, err := reqreply.NewRequester[req, resp](t.Context(), c, reqreply.WithoutNative())
	if err != nil {
		t.Fatal(err)
	}
	reply := r.ReplyTopic()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.deleted) != 1 || c.deleted[0] != reply {
		t.Fatalf("deleted %v, want the reply topic %s", c.deleted, reply)
	}
}
