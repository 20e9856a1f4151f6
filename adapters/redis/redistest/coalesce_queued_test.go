package redistest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// holdPipeline is a go-redis hook that holds the next pipeline until
// released.
type holdPipeline struct {
	mu      sync.Mutex
	entered chan struct{}
	release chan struct{}
}

func (h *holdPipeline) holdNext() (entered, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entered, h.release = make(chan struct{}), make(chan struct{})
	return h.entered, h.release
}

func (h *holdPipeline) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *holdPipeline) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return next
}
func (h *holdPipeline) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.mu.Lock()
		entered, release := h.entered, h.release
		h.entered, h.release = nil, nil
		h.mu.Unlock()
		if entered != nil {
			close(entered)
			<-release
		}
		return next(ctx, cmds)
	}
}

var _ goredis.Hook = (*holdPipeline)(nil)

// coalescedQueue starts, on a client with one coalescing goroutine, a
// PublishAsync whose pipeline is held, and a second PublishAsync (the next
// lane) whose batch its lane hands to the coalescer, where it waits behind
// the first; it returns the client, the results and the release of the
// held pipeline.
func coalescedQueue(t *testing.T, ctx, secondCtx context.Context, topic string) (c *redisadapter.Client, first, second chan error, release chan struct{}) {
	t.Helper()
	o, err := goredis.ParseURL(redistest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	h := &holdPipeline{}
	rc.AddHook(h)
	c = mustNew(t, rc, redisadapter.WithCoalescing(1))
	t.Cleanup(func() { _ = c.Close() })
	d := redistest.Open(t) // the test may close c
	t.Cleanup(func() { _ = d.DeleteTopic(context.Background(), topic) })

	entered, release := h.holdNext()
	first, second = make(chan error, 1), make(chan error, 1)
	c.PublishAsync(ctx, topic, messaging.NewMessage([]byte("first")), func(_ *messaging.Message, err error) { first <- err })
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first message's pipeline never came")
	}
	probe := integration.NewHandedOn(secondCtx)
	c.PublishAsync(probe, topic, messaging.NewMessage([]byte("second")), func(_ *messaging.Message, err error) { second <- err })
	select {
	case <-probe.HandedOn():
	case <-ctx.Done():
		t.Fatal("the second message's lane never handed it on")
	}
	return c, first, second, release
}

// entries returns the payloads of topic's stream.
func entries(t *testing.T, c *redisadapter.Client, topic string) []string {
	t.Helper()
	xs, err := c.Redis().XRange(t.Context(), c.StreamKey(topic), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range xs {
		p, _ := x.Values["payload"].(string)
		out = append(out, p)
	}
	return out
}

// TestPublishAsyncCtxEndedWhileCoalesced: with WithCoalescing, a
// PublishAsync message whose batch waits for the coalescing goroutine and
// whose ctx ends meanwhile fails with ctx's error and is not sent.
func TestPublishAsyncCtxEndedWhileCoalesced(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topic := integration.UniqueName(t, "coalctx")
	mctx, mcancel := context.WithCancel(ctx)
	c, first, second, release := coalescedQueue(t, ctx, mctx, topic)
	mcancel()
	close(release)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first message: %v", err)
	}
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Errorf("second message, its ctx cancelled while it waited for the coalescer: %v, want context.Canceled", err)
	}
	if got := entries(t, c, topic); len(got) != 1 {
		t.Errorf("stream holds %q, want [first]", got)
	}
}

// TestPublishAsyncCoalescedAtClose: with WithCoalescing, a PublishAsync
// message whose batch waits for the coalescing goroutine when Close starts
// fails with ErrClosed and is not sent; the one sent gets Redis's answer.
func TestPublishAsyncCoalescedAtClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topic := integration.UniqueName(t, "coalclose")
	c, first, second, release := coalescedQueue(t, ctx, ctx, topic)
	integration.CloseWhileHeld(t, ctx, c, topic, release)
	if err := <-first; err != nil {
		t.Fatalf("first message (sent before Close): %v", err)
	}
	if err := <-second; !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("second message, waiting for the coalescer when Close started: %v, want ErrClosed", err)
	}
}
