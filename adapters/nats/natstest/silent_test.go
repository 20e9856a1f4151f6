package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// These tests check the unavailable timeout against a server that takes
// requests and never answers (suspended with SIGSTOP: the connection stays
// open, nats.go sees nothing wrong until its pings go unanswered, minutes
// later). Such a server is unavailable, not slow: Publish, PublishAsync
// and core mode's flushes fail with messaging.ErrUnavailable about
// unavailable_timeout after the call, never sooner than that after the
// server last answered on the connection. A server that is slow but
// answers is not unavailable: the calls queued behind its answers wait.

// silentTimeout is the unavailable timeout of the silent-server tests.
const silentTimeout = time.Second

// silentSlack is how much later than its deadline a call may fail.
const silentSlack = 500 * time.Millisecond

var bothModes = []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore}

// silentServer opens a client (mode, unavailable_timeout=1s, the default
// publish and request timeouts) of a private server, publishes one message
// to topic (its stream exists then) and suspends the server, which resumes
// before the client closes.
func silentServer(t *testing.T, mode natsadapter.Mode) (srv *natstest.Server, c *natsadapter.Client, topic string) {
	t.Helper()
	return silentServerWith(t, silentTimeout, natsadapter.WithMode(mode))
}

// silentServerWith is silentServer with the unavailable timeout and the
// client's options given.
func silentServerWith(t *testing.T, unavailable time.Duration, opts ...natsadapter.Option) (srv *natstest.Server, c *natsadapter.Client, topic string) {
	t.Helper()
	srv = natstest.StartServer(t)
	c = natstest.OpenURL(t, fmt.Sprintf("%s?unavailable_timeout=%v", srv.URL(), unavailable), opts...)
	return srv, c, silence(t, srv, c)
}

// silence publishes one message to a new topic with c (its stream exists
// then), suspends srv, which resumes before c closes, and returns the
// topic.
func silence(t *testing.T, srv *natstest.Server, c *natsadapter.Client) string {
	t.Helper()
	t.Cleanup(srv.Continue) // before c's Close (LIFO): Close does not wait on it
	topic := integration.UniqueName(t, "silent")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	return topic
}

// flushSilent flushes c, failing the test unless Flush returns nil within
// 40s (the publish timeout is 30s).
func flushSilent(t *testing.T, c *natsadapter.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// checkSilentWait fails the test unless what, which began at begin and
// ended at end with err, failed with messaging.ErrUnavailable about the
// unavailable timeout after it began.
func checkSilentWait(t *testing.T, what string, begin, end time.Time, err error) {
	t.Helper()
	took := end.Sub(begin)
	t.Logf("%s: %v after %v", what, err, took.Round(time.Millisecond))
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Errorf("%s: %v, want an error wrapping messaging.ErrUnavailable", what, err)
	}
	if took < silentTimeout-50*time.Millisecond || took > silentTimeout+silentSlack {
		t.Errorf("%s ended %v after it began, want about the unavailable timeout %v", what, took.Round(time.Millisecond), silentTimeout)
	}
}

// TestPublishUnavailableOnSilentServer: Publish with a context without
// deadline fails every message with messaging.ErrUnavailable about the
// unavailable timeout (1s) after the call. In JetStream mode it used to
// wait for publish_timeout (30s); in core mode its flush for
// request_timeout (10s), failing with nats: timeout.
func TestPublishUnavailableOnSilentServer(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(mode.String(), func(t *testing.T) {
			_, c, topic := silentServer(t, mode)
			checkSilentPublish(t, c, topic)
		})
	}
}

// checkSilentPublish fails the test unless a Publish of two messages to
// topic, with a context without deadline, fails both with
// messaging.ErrUnavailable about the unavailable timeout after the call.
func checkSilentPublish(t *testing.T, c *natsadapter.Client, topic string) {
	t.Helper()
	begin := time.Now()
	err := c.Publish(context.Background(), topic,
		&messaging.Message{ID: "a", Payload: []byte("a")}, &messaging.Message{ID: "b", Payload: []byte("b")})
	checkSilentWait(t, "Publish", begin, time.Now(), err)
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Failed()) != 2 {
		t.Errorf("Publish: %T %v, want a *PublishError failing both messages", err, err)
	}
}

// TestPublishAsyncUnavailableOnSilentServer: messages given to
// PublishAsync 200ms apart each end once, with messaging.ErrUnavailable,
// about the unavailable timeout after PublishAsync took them; Flush
// returns about then after the last. Once the server answers again, the
// answers to those messages end none of them a second time. In JetStream
// mode they used to wait for publish_timeout (30s); in core mode for the
// flush's request_timeout (10s), failing with nats: timeout.
func TestPublishAsyncUnavailableOnSilentServer(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(mode.String(), func(t *testing.T) {
			srv, c, topic := silentServer(t, mode)
			var r asyncRecorder
			const n = 5
			r.publishEvery(c, topic, n, silentTimeout/5)
			r.mu.Lock()
			last := r.res[n-1].returned
			r.mu.Unlock()
			ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
			defer cancel()
			err := c.Flush(ctx)
			flushed := time.Now()
			if err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if took := flushed.Sub(last); took > silentTimeout+silentSlack {
				t.Errorf("Flush returned %v after the last PublishAsync, want about the unavailable timeout %v", took.Round(time.Millisecond), silentTimeout)
			}
			checkSilentAsync(t, srv, c, topic, &r, func(res *asyncResult) time.Time { return res.returned })
		})
	}
}

// checkSilentAsync fails the test unless each message r recorded (all
// flushed) ended once, with messaging.ErrUnavailable, about the
// unavailable timeout after since(its result); then lets srv answer again
// and checks that once a Publish to topic succeeded, the answers to the
// failed messages (sent before it) ended none of them again.
func checkSilentAsync(t *testing.T, srv *natstest.Server, c *natsadapter.Client, topic string, r *asyncRecorder, since func(*asyncResult) time.Time) {
	t.Helper()
	r.mu.Lock()
	for i, res := range r.res {
		if len(res.errs) != 1 {
			r.mu.Unlock()
			t.Fatalf("message %d: %d results %v, want one", i, len(res.errs), res.errs)
		}
		checkSilentWait(t, fmt.Sprintf("message %d", i), since(res), res.at[0], res.errs[0])
	}
	r.mu.Unlock()

	srv.Continue()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after", Payload: []byte("y")}); err != nil {
		t.Fatalf("Publish once the server answers again: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, res := range r.res {
		if len(res.errs) != 1 {
			t.Errorf("message %d: %d results %v once the server answered again, want one", i, len(res.errs), res.errs)
		}
	}
}

// TestPublishNewTopicUnavailableOnSilentServer: in JetStream mode, Publish
// and PublishAsync to a topic the client has not published to yet (its
// stream not looked up) fail with messaging.ErrUnavailable about the
// unavailable timeout (1s) after the call, each message once, though the
// lookup of the topic's stream gets no answer. Publish used to wait
// publish_timeout (30s) for the lookup, PublishAsync JetStream's API
// timeout (5s), failing with a context deadline.
func TestPublishNewTopicUnavailableOnSilentServer(t *testing.T) {
	t.Run("Publish", func(t *testing.T) {
		srv, c, _ := silentServer(t, natsadapter.ModeJetStream)
		topic := integration.UniqueName(t, "silent-new")
		checkSilentPublish(t, c, topic)
		srv.Continue()
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after", Payload: []byte("y")}); err != nil {
			t.Fatalf("Publish once the server answers again: %v", err)
		}
	})
	t.Run("PublishAsync", func(t *testing.T) {
		srv, c, _ := silentServer(t, natsadapter.ModeJetStream)
		topic := integration.UniqueName(t, "silent-new")
		var r asyncRecorder
		const n = 2
		for i := range n {
			r.publish(context.Background(), c, topic, &messaging.Message{ID: fmt.Sprintf("m%d", i), Payload: []byte("x")})
		}
		flushSilent(t, c)
		// The lookup runs in the caller's goroutine: from the call.
		checkSilentAsync(t, srv, c, topic, &r, func(res *asyncResult) time.Time { return res.called })
	})
}

// slowTimeout and slowLatency make a slow server: the proxy forwards every
// chunk of bytes slowLatency after it read it, each way, so each answer
// comes 2×slowLatency after its request, well within slowTimeout, while the
// calls queued behind each other wait longer than slowTimeout in all.
const (
	slowTimeout = 2 * time.Second
	slowLatency = 700 * time.Millisecond
)

// TestSlowServerIsNotUnavailable: on a slow server (see slowLatency) the
// calls queued behind its answers, waiting longer than the unavailable
// timeout in all, succeed: the timeout counts from the server's last
// answer. JetStream mode: concurrent Publish calls, one message in flight
// at a time (WithMaxInFlight(1)), each waiting for the acknowledgements of
// those before it. Core mode: a PublishAsync message given while the
// flusher waits for the flush of the one before (half a latency later),
// so that it waits for that flush and then its own. With the timeout
// counted from the call only, the last call failed in both modes. JetStream
// mode, to a new topic: Publish and PublishAsync, whose stream lookup,
// stream creation and acknowledgement take three answers.
func TestSlowServerIsNotUnavailable(t *testing.T) {
	t.Parallel() // mostly waiting on the slow proxies: each case has its own server
	t.Run("jetstream", func(t *testing.T) {
		t.Parallel()
		_, p, c := openProxied(t, slowTimeout, natsadapter.WithMaxInFlight(1))
		topic := integration.UniqueName(t, "slow")
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
			t.Fatal(err)
		}
		p.SetLatency(slowLatency)
		const n = 3
		errs := make([]error, n)
		took := make([]time.Duration, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				begin := time.Now()
				errs[i] = c.Publish(context.Background(), topic, &messaging.Message{ID: fmt.Sprintf("m%d", i)})
				took[i] = time.Since(begin)
			})
		}
		wg.Wait()
		checkSlow(t, "Publish", errs, took)
	})
	t.Run("jetstream new topic", func(t *testing.T) {
		t.Parallel()
		// Looking up the stream, creating it and the acknowledgement: three
		// answers, each within the unavailable timeout of the one before.
		_, p, c := openProxied(t, slowTimeout)
		p.SetLatency(slowLatency)
		begin := time.Now()
		err := c.Publish(context.Background(), integration.UniqueName(t, "slow-new"), &messaging.Message{ID: "p"})
		checkSlow(t, "Publish to a new topic", []error{err}, []time.Duration{time.Since(begin)})
		var r asyncRecorder
		r.publish(context.Background(), c, integration.UniqueName(t, "slow-new-async"), &messaging.Message{ID: "a"})
		// The lookup runs in the caller's goroutine: from the call.
		errs, took := flushedResults(t, c, &r, func(res *asyncResult) time.Time { return res.called })
		checkSlow(t, "PublishAsync to a new topic", errs, took)
	})
	t.Run("provision", func(t *testing.T) {
		t.Parallel()
		// Looking up and creating the stream, then the consumer: several
		// answers, each within the unavailable timeout of the one before.
		_, p, c := openProxied(t, slowTimeout)
		p.SetLatency(slowLatency)
		begin := time.Now()
		err := c.Provision(context.Background(), integration.UniqueName(t, "slow-prov"), integration.UniqueName(t, "g"))
		checkSlow(t, "Provision", []error{err}, []time.Duration{time.Since(begin)})
	})
	t.Run("core", func(t *testing.T) {
		t.Parallel()
		_, p, c := openProxied(t, slowTimeout, natsadapter.WithMode(natsadapter.ModeCore))
		topic := integration.UniqueName(t, "slow")
		if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
			t.Fatal(err)
		}
		p.SetLatency(slowLatency)
		var r asyncRecorder
		const n = 2
		r.publishEvery(c, topic, n, slowLatency/2)
		errs, took := flushedResults(t, c, &r, func(res *asyncResult) time.Time { return res.returned })
		checkSlow(t, "PublishAsync", errs, took)
	})
}

// flushedResults flushes c and returns the result of each message r
// recorded, and how long after since(its result) it came; it fails the
// test unless each has one.
func flushedResults(t *testing.T, c *natsadapter.Client, r *asyncRecorder, since func(*asyncResult) time.Time) ([]error, []time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make([]error, len(r.res))
	took := make([]time.Duration, len(r.res))
	for i, res := range r.res {
		if len(res.errs) != 1 {
			t.Fatalf("message %d: results %v, want one", i, res.errs)
		}
		errs[i], took[i] = res.errs[0], res.at[0].Sub(since(res))
	}
	return errs, took
}

// checkSlow fails the test unless every call succeeded and the slowest
// waited longer than the unavailable timeout (else the test proves
// nothing).
func checkSlow(t *testing.T, what string, errs []error, took []time.Duration) {
	t.Helper()
	var slowest time.Duration
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s %d failed after %v: %v", what, i, took[i].Round(time.Millisecond), err)
		}
		slowest = max(slowest, took[i])
	}
	t.Logf("%s: the slowest of %d took %v", what, len(errs), slowest.Round(time.Millisecond))
	if slowest <= slowTimeout {
		t.Errorf("%s: the slowest call took %v, not over the unavailable timeout %v: nothing was queued long enough", what, slowest.Round(time.Millisecond), slowTimeout)
	}
}

// publishEvery gives n messages (IDs m0, m1...) to PublishAsync, with a
// context without deadline, one every interval.
func (r *asyncRecorder) publishEvery(c *natsadapter.Client, topic string, n int, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range n {
		if i > 0 {
			<-tick.C // the calls' spacing is the subject
		}
		r.publish(context.Background(), c, topic, &messaging.Message{ID: fmt.Sprintf("m%d", i), Payload: []byte("x")})
	}
}

// TestPublishUnavailableBeforeSilentDeadline: with publish_timeout (and
// request_timeout) shorter than unavailable_timeout, a server that takes
// the messages and answers nothing fails them at publish_timeout
// (JetStream: nats.go's async publish timeout; core mode: the flush's
// request_timeout), still with messaging.ErrUnavailable, the sentinel of
// an unanswered broker. They used to fail with nats.go's bare "timed out
// waiting for ack" and "nats: timeout", wrapping no sentinel.
func TestPublishUnavailableBeforeSilentDeadline(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(mode.String(), func(t *testing.T) {
			_, c, topic := silentServerWith(t, 20*time.Second, natsadapter.WithMode(mode),
				natsadapter.WithPublishTimeout(500*time.Millisecond), natsadapter.WithRequestTimeout(500*time.Millisecond))
			err := c.Publish(t.Context(), topic, &messaging.Message{ID: "a", Payload: []byte("a")}, &messaging.Message{ID: "b", Payload: []byte("b")})
			var pe *messaging.PublishError
			if !errors.As(err, &pe) || len(pe.Failed()) != 2 {
				t.Fatalf("Publish: %T %v, want a *PublishError failing both messages", err, err)
			}
			for i, e := range pe.Errs {
				if !errors.Is(e, messaging.ErrUnavailable) {
					t.Errorf("message %d: %v, want an error wrapping messaging.ErrUnavailable", i, e)
				}
			}
		})
	}
}

// TestPublishTopicNotFoundStreamGone: with WithExistingStreams, a message
// published after its topic's stream was deleted finds no stream, nor does
// the adapter's lookup before its one resend; Publish and PublishAsync
// fail it with messaging.ErrTopicNotFound. They used to fail it with
// nats.go's bare "no response from stream" (Publish) and the lookup's
// "stream not found" (PublishAsync), wrapping no sentinel.
func TestPublishTopicNotFoundStreamGone(t *testing.T) {
	c, topic, stream := boundTopic(t, "gone")
	if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := c.JetStream().DeleteStream(t.Context(), stream); err != nil {
		t.Fatal(err)
	}
	err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("y")})
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Errs) != 1 || !errors.Is(pe.Errs[0], messaging.ErrTopicNotFound) {
		t.Errorf("Publish: %v, want a *PublishError failing the message with messaging.ErrTopicNotFound", err)
	}
	got := make(chan error, 1)
	c.PublishAsync(t.Context(), topic, &messaging.Message{Payload: []byte("z")}, func(_ *messaging.Message, err error) { got <- err })
	select {
	case err := <-got:
		if !errors.Is(err, messaging.ErrTopicNotFound) {
			t.Errorf("PublishAsync: %v, want an error wrapping messaging.ErrTopicNotFound", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("PublishAsync: no result within 20s")
	}
}

// TestPublishWindowFullHonoursContext: a Publish waiting for room in the
// window (WithMaxInFlight), held by a message a silent server has not
// answered, ends with its context (long before the unavailable timeout,
// 20s here, frees the slot).
func TestPublishWindowFullHonoursContext(t *testing.T) {
	_, c, topic := silentServerWith(t, 20*time.Second, natsadapter.WithMaxInFlight(1))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	// Sent, unanswered: it keeps the window's one slot after its call ends.
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "holds"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish on the silent server: %v, want context.DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel2()
	begin := time.Now()
	err := c.Publish(ctx2, topic, &messaging.Message{ID: "waits"})
	took := time.Since(begin)
	if !errors.Is(err, context.DeadlineExceeded) || took > 5*time.Second {
		t.Fatalf("Publish waiting for the window: %v after %v, want context.DeadlineExceeded after about 500ms", err, took.Round(time.Millisecond))
	}
}
