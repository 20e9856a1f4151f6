package redistest_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// These tests check that a call's context deadline, and Publish's
// unavailable timeout, bound every call to a server that takes requests
// and never answers (suspended with SIGSTOP: connections are accepted and
// requests go into the socket buffers). go-redis applied context deadlines
// to reads and writes only with ContextTimeoutEnabled, which the adapter
// did not set, so each call lasted go-redis's ReadTimeout (5s) whatever the
// deadline.

// silentTimeout is the deadline of the calls' contexts.
const silentTimeout = 300 * time.Millisecond

// silentServer opens a client of a private server (URL query query)
// that published one message to topic, which exists then, and suspends
// the server.
func silentServer(t *testing.T, query string) (c *redisadapter.Client, topic string) {
	t.Helper()
	srv := redistest.StartServer(t)
	c, err := redisadapter.Open(t.Context(), srv.URL()+query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // before the server's Kill (LIFO)
	topic = integration.UniqueName(t, "silent")
	if err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	return c, topic
}

// checkBounded fails the test unless a call that began at begin failed
// within limit (and deadlineSlack).
func checkBounded(t *testing.T, what string, begin time.Time, limit time.Duration, err error) {
	t.Helper()
	took := time.Since(begin)
	t.Logf("%s: %v after %v", what, err, took.Round(time.Millisecond))
	if err == nil {
		t.Errorf("%s succeeded against a suspended server", what)
	}
	if took > limit+deadlineSlack {
		t.Errorf("%s returned after %v, want within about %v", what, took.Round(time.Millisecond), limit)
	}
}

// checkPublishFailed fails the test unless err is a *PublishError failing
// its one message with ErrUnavailable or the context's deadline.
func checkPublishFailed(t *testing.T, err error) {
	t.Helper()
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Failed()) != 1 ||
		!errors.Is(err, messaging.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish: %T %v, want a *PublishError failing the message with ErrUnavailable or the context's deadline", err, err)
	}
}

var silentModes = map[string]string{"direct": "", "coalesce=1": "?coalesce=1"}

// TestPublishContextOnSilentServer: Publish with a 300ms context fails
// within about 300ms, directly and through a coalesced pipeline, and
// Close, which waits for the pipelines in flight, returns within about
// 300ms of the call's start too: a coalesced pipeline ends when its
// callers' contexts do. (It used to last the message's unavailable
// timeout, 5s, after its caller had given up.)
func TestPublishContextOnSilentServer(t *testing.T) {
	for name, query := range silentModes {
		t.Run(name, func(t *testing.T) {
			c, topic := silentServer(t, query)
			ctx, cancel := context.WithTimeout(t.Context(), silentTimeout)
			defer cancel()
			begin := time.Now()
			err := c.Publish(ctx, topic, messaging.NewMessage([]byte("y")))
			checkBounded(t, "Publish", begin, silentTimeout, err)
			checkPublishFailed(t, err)
			closeErr := c.Close()
			if took := time.Since(begin); took > silentTimeout+deadlineSlack {
				t.Errorf("Close (%v) returned %v after the Publish began, want within about %v", closeErr, took.Round(time.Millisecond), silentTimeout)
			}
		})
	}
}

// TestPublishUnavailableOnSilentServer: with unavailable_timeout=1s and a
// context without deadline, Publish fails with ErrUnavailable within about
// 1s, directly and through a coalesced pipeline.
func TestPublishUnavailableOnSilentServer(t *testing.T) {
	for name, query := range silentModes {
		t.Run(name, func(t *testing.T) {
			if query == "" {
				query = "?"
			} else {
				query += "&"
			}
			c, topic := silentServer(t, query+"unavailable_timeout=1s")
			begin := time.Now()
			err := c.Publish(context.Background(), topic, messaging.NewMessage([]byte("y")))
			checkBounded(t, "Publish", begin, time.Second, err)
			checkPublishFailed(t, err)
			if !errors.Is(err, messaging.ErrUnavailable) {
				t.Errorf("Publish: %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestAdminContextOnSilentServer: Provision, DeleteTopic, Inspect and
// Topics with a 300ms context fail within about 300ms.
func TestAdminContextOnSilentServer(t *testing.T) {
	c, topic := silentServer(t, "")
	for what, call := range map[string]func(ctx context.Context) error{
		"Provision":   func(ctx context.Context) error { return c.Provision(ctx, topic, "g") },
		"DeleteTopic": func(ctx context.Context) error { return c.DeleteTopic(ctx, topic) },
		"Inspect":     func(ctx context.Context) error { _, err := c.Inspect(ctx, topic); return err },
		"Topics":      func(ctx context.Context) error { _, err := c.Topics(ctx); return err },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), silentTimeout)
		begin := time.Now()
		err := call(ctx)
		cancel()
		checkBounded(t, what, begin, silentTimeout, err)
	}
}

// dialCounter counts the connections a go-redis client dials.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}

func (d *dialCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }

func (d *dialCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// TestReadWithDeadlineKeepsConnection: a Read (group-less XREAD, which
// blocks no longer than the context's deadline) whose context has a
// deadline ends with it, cleanly and leaving its connection open. Had the
// deadline been passed to go-redis, which bounds reads by it with
// ContextTimeoutEnabled, the blocking read would have been cut off as the
// server's empty reply came, closing its connection: the next call would
// dial a new one.
func TestReadWithDeadlineKeepsConnection(t *testing.T) {
	c, err := redisadapter.Open(t.Context(), redistest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	dials := &dialCounter{}
	c.Redis().AddHook(dials)
	topic := topicFor(t, c, "readdeadline")
	publish := func() {
		t.Helper()
		if err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond) // under the 1s block time
	defer cancel()
	read := make(chan struct{}, 1)
	sub, err := c.Read(ctx, topic, messaging.Latest, func(context.Context, *messaging.Message) error {
		read <- struct{}{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("Read still running 15s after its context's deadline")
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Read ended with %v, want nil (its context's deadline)", err)
	}
	if len(read) != 0 {
		t.Error("Read delivered a message published before it began at Latest")
	}
	before := dials.n.Load()
	publish()
	if n := dials.n.Load() - before; n != 0 {
		t.Errorf("the Publish after the Read dialled %d connections, want none: the Read's was closed", n)
	}
}

// TestClusterPublishContextOnSilentShard: on a cluster client made from a
// URL, a Publish with a 300ms context to a stream whose master takes
// requests and never answers fails within about 300ms, and so does one
// with unavailable_timeout=1s and no deadline.
func TestClusterPublishContextOnSilentShard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cl := redistest.StartCluster(t, 3, 0)
	c, err := redisadapter.Open(t.Context(), "redis://"+cl.Nodes[0].Addr()+"?cluster=true&unavailable_timeout=1s&addr="+cl.Nodes[1].Addr()+"&addr="+cl.Nodes[2].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // before the nodes' Kill (LIFO)
	topic := integration.UniqueName(t, "silent")
	master := cl.MasterOf(cl.Nodes[0], c.StreamKey(topic))
	if master == nil {
		t.Fatal("no master for the topic's slot")
	}
	if err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	master.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), silentTimeout)
	defer cancel()
	begin := time.Now()
	err = c.Publish(ctx, topic, messaging.NewMessage([]byte("y")))
	checkBounded(t, "Publish with a deadline", begin, silentTimeout, err)
	checkPublishFailed(t, err)
	begin = time.Now()
	err = c.Publish(context.Background(), topic, messaging.NewMessage([]byte("z")))
	checkBounded(t, "Publish without a deadline", begin, time.Second, err)
	checkPublishFailed(t, err)
}
