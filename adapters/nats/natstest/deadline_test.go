package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// asyncResult is one message's PublishAsync call and results.
type asyncResult struct {
	called   time.Time
	returned time.Time // when PublishAsync returned: the message was admitted to the window
	at       []time.Time
	errs     []error
}

// asyncRecorder records the results of PublishAsync messages.
type asyncRecorder struct {
	mu   sync.Mutex
	res  []*asyncResult
	wake chan struct{} // closed at the next result (see woken)
}

// woken returns a channel closed when the next result is recorded.
func (r *asyncRecorder) woken() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return r.wake
}

// publish calls PublishAsync with m and records the call and its results.
func (r *asyncRecorder) publish(ctx context.Context, ap messaging.AsyncPublisher, topic string, m *messaging.Message) {
	res := &asyncResult{called: time.Now()}
	r.mu.Lock()
	r.res = append(r.res, res)
	r.mu.Unlock()
	ap.PublishAsync(ctx, topic, m, func(_ *messaging.Message, err error) {
		now := time.Now()
		r.mu.Lock()
		res.at = append(res.at, now)
		res.errs = append(res.errs, err)
		if r.wake != nil {
			close(r.wake)
			r.wake = nil
		}
		r.mu.Unlock()
	})
	now := time.Now()
	r.mu.Lock()
	res.returned = now
	r.mu.Unlock()
}

// openProxied starts a private server and opens a client of it through a
// fault proxy, with reconnect_wait=50ms and the unavailable timeout given.
func openProxied(t *testing.T, unavailable time.Duration, opts ...natsadapter.Option) (*natstest.Server, *fault.Proxy, *natsadapter.Client) {
	t.Helper()
	srv := natstest.StartServer(t)
	p := fault.NewProxy(t, srv.Addr())
	c := natstest.OpenURL(t, fmt.Sprintf("nats://%s?reconnect_wait=50ms&unavailable_timeout=%v", p.Addr(), unavailable), opts...)
	return srv, p, c
}

// cutAndWait cuts p and returns once c's connection knows it is down.
func cutAndWait(t *testing.T, c *natsadapter.Client, p *fault.Proxy) {
	t.Helper()
	downAndWait(t, c, p.Cut, "the cut")
}

// killAndWait kills srv and returns once c's connection knows it is down:
// what is published from then on waits for the connection.
func killAndWait(t *testing.T, c *natsadapter.Client, srv *natstest.Server) {
	t.Helper()
	downAndWait(t, c, srv.Kill, "the server was gone")
}

// downAndWait runs down and returns once c's connection knows it is down
// (what says what down did, for the failure).
func downAndWait(t *testing.T, c *natsadapter.Client, down func(), what string) {
	t.Helper()
	reconnecting := c.Conn().StatusChanged(natsgo.RECONNECTING)
	defer c.Conn().RemoveStatusListener(reconnecting)
	down()
	select {
	case <-reconnecting:
	case <-time.After(10 * time.Second):
		t.Fatalf("the client did not notice %s", what)
	}
}

// TestPublishAsyncUnavailableDeadlinePerMessage: with the server
// unreachable, messages given to PublishAsync one after the other over
// one and a half unavailable timeouts each fail once with
// messaging.ErrUnavailable about unavailable_timeout after their own call:
// neither sooner (a message given while the flusher or the parked messages
// already waited failed with them, 100ms after its call) nor much later.
// Flush returns about unavailable_timeout after the last call. In both
// modes.
func TestPublishAsyncUnavailableDeadlinePerMessage(t *testing.T) {
	const unavailable = time.Second
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			_, p, c := openProxied(t, unavailable, natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "deadline")
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			cutAndWait(t, c, p)
			var r asyncRecorder
			const n = 15 // one every 100ms: over 1.5 unavailable timeouts
			tick := time.NewTicker(unavailable / 10)
			defer tick.Stop()
			for i := range n {
				if i > 0 {
					<-tick.C // the calls' spacing is the subject
				}
				r.publish(t.Context(), c, topic, &messaging.Message{ID: fmt.Sprintf("during-%d", i), Payload: []byte("x")})
			}
			last := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(last); took > unavailable+500*time.Millisecond {
				t.Errorf("Flush returned %v after the last call, unavailable_timeout %v", took, unavailable)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			for i, res := range r.res {
				if len(res.errs) != 1 || !errors.Is(res.errs[0], messaging.ErrUnavailable) {
					t.Fatalf("message %d: results %v, want one wrapping messaging.ErrUnavailable", i, res.errs)
				}
				waited := res.at[0].Sub(res.called)
				if waited < unavailable-50*time.Millisecond || waited > unavailable+500*time.Millisecond {
					t.Errorf("message %d failed %v after its call, want about the unavailable timeout %v", i, waited.Round(time.Millisecond), unavailable)
				}
			}
		})
	}
}

// TestPublishAsyncBriefOutage: a client publishing with PublishAsync
// without pause through two network cuts shorter than the unavailable
// timeout. Keyless messages all succeed and the stream holds each exactly
// once: those in flight when the connection dropped (which nats.go fails
// with ErrDisconnected) are sent again after the reconnect, deduplicated by
// their ID. Messages with a Key keep their order: those in flight at a cut
// may fail (sending them again could put them after messages nats.go sent
// from its reconnect buffer), and the stream holds the others in the order
// of the calls, each once.
func TestPublishAsyncBriefOutage(t *testing.T) {
	for _, key := range []string{"", "k"} {
		t.Run("key="+key, func(t *testing.T) {
			_, p, c := openProxied(t, 5*time.Second)
			topic := integration.UniqueName(t, "brief")
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			var r asyncRecorder
			stop := make(chan struct{})
			published := make(chan int)
			go func() {
				n := 0
				defer func() { published <- n }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r.publish(t.Context(), c, topic, &messaging.Message{ID: fmt.Sprintf("brief-%d", n), Key: key, Payload: []byte("x")})
					n++
				}
			}()
			for range 2 {
				waitResults(t, &r, 2000)
				p.CutFor(200 * time.Millisecond) // the outage's length is the subject
			}
			waitResults(t, &r, 2000)
			close(stop)
			n := <-published
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			failed := make([]bool, n)
			nfailed := 0
			var first error
			for i, res := range r.res {
				if len(res.errs) != 1 {
					t.Fatalf("message %d: %d results", i, len(res.errs))
				}
				if res.errs[0] != nil {
					if !errors.Is(res.errs[0], messaging.ErrUnavailable) {
						t.Fatalf("message %d: %v, want nil or an error wrapping ErrUnavailable", i, res.errs[0])
					}
					if nfailed == 0 {
						first = res.errs[0]
					}
					failed[i] = true
					nfailed++
				}
			}
			r.mu.Unlock()
			t.Logf("%d of %d messages failed through two 200ms cuts (first: %v)", nfailed, n, first)
			if key == "" && nfailed > 0 {
				t.Errorf("%d of %d keyless messages failed through two 200ms cuts, the first: %v", nfailed, n, first)
			}
			// The stream: "before", then every message that succeeded, once;
			// with a Key in the order of the calls.
			cons, err := c.JetStream().OrderedConsumer(ctx, c.StreamName(topic), jetstream.OrderedConsumerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			stats, err := c.Inspect(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			total, _ := stats.Messages.Value()
			seen := make([]bool, n)
			last := -1
			for got := int64(0); got < total; {
				batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				for m := range batch.Messages() {
					got++
					id := m.Headers().Get(natsadapter.HeaderMsgID)
					var i int
					if id == "before" {
						continue
					}
					if _, err := fmt.Sscanf(id, "brief-%d", &i); err != nil || i < 0 || i >= n || seen[i] {
						t.Fatalf("stream message %d: ID %q (seen: %v)", got, id, err == nil && i >= 0 && i < n && seen[i])
					}
					seen[i] = true
					if key != "" && i < last {
						t.Fatalf("stream message %d is %q, after brief-%d", got, id, last)
					}
					last = max(last, i)
				}
				if err := batch.Error(); err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				if !seen[i] && !failed[i] {
					t.Fatalf("brief-%d succeeded and is not in the stream", i)
				}
			}
		})
	}
}

// waitResults waits until at least n more messages have their results
// than when it was called.
func waitResults(t *testing.T, r *asyncRecorder, n int) {
	t.Helper()
	count := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		k := 0
		for _, res := range r.res {
			if len(res.errs) > 0 {
				k++
			}
		}
		return k
	}
	want := count() + n
	timeout := time.After(30 * time.Second)
	for {
		woken := r.woken() // before counting: a result in between closes it
		if count() >= want {
			return
		}
		select {
		case <-woken:
		case <-timeout:
			t.Fatalf("fewer than %d results within 30s", want)
		}
	}
}

// TestPublishAsyncJustAfterLoss: PublishAsync calls racing with the loss
// of the connection (several goroutines publishing without pause through a
// cut that lasts) each get one result within about the unavailable timeout
// of the call (of its return, here: the window is full, and a call waits
// for room before its message is taken), and Flush returns within about
// that of the last call.
// nats.go fails the messages awaiting their acknowledgement when the
// connection drops, but a message that passed the adapter's connection
// check just before and reached nats.go just after went into its reconnect
// buffer and failed only after the publish timeout (30s, "timeout waiting
// for ack"), holding up Flush and Close as long. The race is hit in some of
// the rounds, not all: the test makes several.
func TestPublishAsyncJustAfterLoss(t *testing.T) {
	const unavailable = time.Second
	_, p, c := openProxied(t, unavailable)
	topic := integration.UniqueName(t, "race")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		var r asyncRecorder
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r.publish(t.Context(), c, topic, &messaging.Message{ID: fmt.Sprintf("race-%d-%d-%d", round, g, i), Key: "k"})
				}
			}()
		}
		waitResults(t, &r, 500)
		cutAndWait(t, c, p)
		close(stop)
		wg.Wait()
		last := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		err := c.Flush(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(last); took > unavailable+500*time.Millisecond {
			t.Errorf("round %d: Flush returned %v after the last call, unavailable_timeout %v", round, took.Round(time.Millisecond), unavailable)
		}
		r.mu.Lock()
		for i, res := range r.res {
			if len(res.errs) != 1 {
				t.Fatalf("round %d, message %d: %d results", round, i, len(res.errs))
			}
			if res.errs[0] != nil && !errors.Is(res.errs[0], messaging.ErrUnavailable) {
				t.Errorf("round %d, message %d: %v, want nil or an error wrapping ErrUnavailable", round, i, res.errs[0])
			}
			if waited := res.at[0].Sub(res.returned); waited > unavailable+500*time.Millisecond {
				t.Errorf("round %d, message %d: result %v after its call returned: %v", round, i, waited.Round(time.Millisecond), res.errs[0])
			}
		}
		r.mu.Unlock()
		if t.Failed() {
			return
		}
		connected := c.Conn().StatusChanged(natsgo.CONNECTED)
		p.Restore()
		select {
		case <-connected:
		case <-time.After(10 * time.Second):
			t.Fatal("no reconnect")
		}
		c.Conn().RemoveStatusListener(connected)
	}
}

// TestPublishAsyncLookupCutByLoss: the first PublishAsync to a topic looks
// up its stream; when the connection drops during the lookup (here the
// proxy holds the request 300ms, and the network is cut once it is sent),
// the answer will never come. The message then waits for the connection
// like one given while it is down: with the cut lasting, it fails with
// messaging.ErrUnavailable about the unavailable timeout after the call;
// with the network back soon, it is published. PublishAsync returns at
// the cut. (The lookup waited for the JetStream API timeout, 5s, in the
// caller's goroutine, and the message failed with "context deadline
// exceeded".)
func TestPublishAsyncLookupCutByLoss(t *testing.T) {
	const unavailable = time.Second
	for _, brief := range []bool{false, true} {
		t.Run(fmt.Sprintf("brief=%v", brief), func(t *testing.T) {
			_, p, c := openProxied(t, unavailable)
			topic := integration.UniqueName(t, "lookup")
			p.SetDelay(300 * time.Millisecond)
			sent := c.Conn().Stats().OutMsgs
			var r asyncRecorder
			returned := make(chan struct{})
			go func() {
				defer close(returned)
				r.publish(context.Background(), c, topic, &messaging.Message{ID: "first"})
			}()
			for c.Conn().Stats().OutMsgs == sent { // the lookup request is out
				time.Sleep(time.Millisecond) // polling a condition
			}
			cut := time.Now()
			cutAndWait(t, c, p)
			select {
			case <-returned:
				if took := time.Since(cut); took > 500*time.Millisecond {
					t.Errorf("PublishAsync returned %v after the cut", took)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("PublishAsync did not return")
			}
			if brief {
				p.SetDelay(0)
				p.Restore()
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			res := r.res[0]
			if len(res.errs) != 1 {
				t.Fatalf("%d results", len(res.errs))
			}
			if brief {
				if res.errs[0] != nil {
					t.Fatalf("with the network back at once: %v", res.errs[0])
				}
				return
			}
			if !errors.Is(res.errs[0], messaging.ErrUnavailable) {
				t.Errorf("result %v, want an error wrapping ErrUnavailable", res.errs[0])
			}
			if waited := res.at[0].Sub(res.called); waited > unavailable+500*time.Millisecond {
				t.Errorf("result %v after the call, unavailable_timeout %v", waited.Round(time.Millisecond), unavailable)
			}
		})
	}
}

// TestPublishAsyncOutageShorterThanTimeoutForMessage: the network is cut;
// message A is given at once, message B 0.8 unavailable timeouts later,
// and the network is back 1.2 timeouts after A. A waited longer than the
// timeout and fails with messaging.ErrUnavailable; B waited 0.4 timeouts
// and is delivered: the outage was shorter than its timeout. (B failed
// with A: the wait ran from the first message.) In both modes; a
// subscriber on another connection receives B.
func TestPublishAsyncOutageShorterThanTimeoutForMessage(t *testing.T) {
	const unavailable = time.Second
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			srv, p, c := openProxied(t, unavailable, natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "short")
			nc, err := natsgo.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sub, err := nc.SubscribeSync(topic)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
				t.Fatal(err)
			}
			cutAndWait(t, c, p)
			var r asyncRecorder
			begin := time.Now()
			r.publish(t.Context(), c, topic, &messaging.Message{ID: "A", Payload: []byte("A")})
			time.Sleep(time.Until(begin.Add(unavailable * 8 / 10))) // the timing is the subject
			r.publish(t.Context(), c, topic, &messaging.Message{ID: "B", Payload: []byte("B")})
			time.Sleep(time.Until(begin.Add(unavailable * 12 / 10)))
			p.Restore()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			a, b := r.res[0], r.res[1]
			r.mu.Unlock()
			if len(a.errs) != 1 || !errors.Is(a.errs[0], messaging.ErrUnavailable) {
				t.Errorf("A: results %v, want one wrapping ErrUnavailable", a.errs)
			}
			if len(b.errs) != 1 || b.errs[0] != nil {
				t.Fatalf("B: results %v, want one nil", b.errs)
			}
			var got []string
			for {
				m, err := sub.NextMsg(time.Second)
				if err != nil {
					break
				}
				got = append(got, string(m.Data))
			}
			if !slices.Contains(got, "B") {
				t.Errorf("the subscriber received %q, not B", got)
			}
		})
	}
}

// TestPublishAsyncInFlightAtLossDeadline: a keyless message sent to a
// silent server (SIGSTOP; see silentServer) is in flight when the network
// is cut half an unavailable timeout after its call: nats.go fails it as
// disconnected and the adapter keeps it to send again after the reconnect,
// which does not come. It fails with messaging.ErrUnavailable about the
// unavailable timeout after its call (the server's last answer came
// before), not that long after the loss (1.5 timeouts after its call: its
// wait began again at the loss, and after a reconnect it could wait its
// whole timeout once more).
func TestPublishAsyncInFlightAtLossDeadline(t *testing.T) {
	srv, p, c := openProxied(t, silentTimeout)
	topic := silence(t, srv, c)
	var r asyncRecorder
	r.publish(context.Background(), c, topic, &messaging.Message{ID: "m", Payload: []byte("x")})
	time.Sleep(time.Until(r.res[0].called.Add(silentTimeout / 2))) // the timing is the subject
	cutAndWait(t, c, p)
	flushSilent(t, c)
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.res[0]
	if len(res.errs) != 1 {
		t.Fatalf("%d results %v, want one", len(res.errs), res.errs)
	}
	checkSilentWait(t, "the message", res.called, res.at[0], res.errs[0])
}
