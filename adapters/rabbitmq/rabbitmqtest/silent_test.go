package rabbitmqtest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// slowLatency makes a slow broker behind a proxy: every chunk of bytes is
// forwarded slowLatency after it was read, each way, so each answer comes
// 2×slowLatency after its request, well within slowUnavailable, while a
// topology call of several round trips takes longer than slowUnavailable in
// all. The margin leaves the shared broker time of its own: with a
// timeout of 1s (400ms over the round trip) one of TestPublishToSlowBroker's
// confirms came too late in 2 of 27 runs, once in CI, on the shared broker
// busy with other tests' quorum queues.
const (
	slowLatency     = 300 * time.Millisecond
	slowUnavailable = 1500 * time.Millisecond
)

// slowTopologyUnavailable is TestSlowBrokerIsNotUnavailable's timeout. Its
// calls declare and delete quorum queues, which the shared broker, busy
// with other tests' quorum queues, can take longer than slowUnavailable
// less the round trip (0.9s) to answer: DeleteTopic failed so in CI on a
// freshly booted machine (2026-12-05, after 5.7s). At 3s the broker has
// 2.4s for each answer, and Provision (about 7s in all) still takes more
// than twice the timeout.
const slowTopologyUnavailable = 3 * time.Second

// openProxied opens a client with params through a proxy to the shared
// broker; it returns the client, the proxy and a client connected
// directly.
func openProxied(t *testing.T, params string) (*rabbitmq.Client, *fault.Proxy, *rabbitmq.Client) {
	t.Helper()
	p, viaProxy, direct := proxied(t, strings.TrimPrefix(params, "?"))
	return rabbitmqtest.Open(t, viaProxy), p, rabbitmqtest.Open(t, direct)
}

// TestSlowBrokerIsNotUnavailable: on a slow broker (see slowLatency) that
// answers each request within the unavailable timeout (see
// slowTopologyUnavailable), the topology and
// admin calls of several round trips succeed although they take longer
// than the timeout in all: it counts from the broker's last answer, not
// only from the call.
func TestSlowBrokerIsNotUnavailable(t *testing.T) {
	t.Parallel() // waits on its own slow proxy
	c, p, direct := openProxied(t, "?unavailable_timeout="+slowTopologyUnavailable.String())
	topic, group := integration.UniqueName(t, "slow"), integration.UniqueName(t, "g")
	deleteAtEnd(t, direct, topic)
	p.SetLatency(slowLatency)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Provision", func(ctx context.Context) error { return c.Provision(ctx, topic, group) }},
		{"DeleteTopic", func(ctx context.Context) error { return c.DeleteTopic(ctx, topic) }},
	}
	for _, call := range calls {
		begin := time.Now()
		err := call.call(context.Background())
		took := time.Since(begin)
		t.Logf("%s with %v latency each way, unavailable_timeout=%v: %v after %v", call.name, slowLatency, slowTopologyUnavailable, err, took.Round(time.Millisecond))
		if err != nil {
			t.Errorf("%s on a slow broker answering each request within the unavailable timeout: %v after %v", call.name, err, took.Round(time.Millisecond))
		}
		if call.name == "Provision" && took <= slowTopologyUnavailable {
			t.Errorf("Provision took %v, not longer than the unavailable timeout: slow the link more for the test to mean something", took.Round(time.Millisecond))
		}
	}
}

// TestAdminAfterSilence: a Provision cut by a silent broker (see
// fault.Proxy.Silence) fails with messaging.ErrUnavailable within about
// unavailable_timeout, and so does a call waiting for the redial meanwhile;
// once the broker answers again the client is on a new connection within
// about the timeout (the redial caught by the silence given up), and the
// same Provision
// succeeds, its group getting what is published to the topic: the call
// cut by the silence left nothing behind that breaks later calls.
func TestAdminAfterSilence(t *testing.T) {
	c, p, direct := openProxied(t, "?unavailable_timeout=1s&reconnect_min=10ms&reconnect_max=50ms")
	topic, group, late := integration.UniqueName(t, "hush"), integration.UniqueName(t, "g"), integration.UniqueName(t, "late")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)
	p.Silence()
	res := make(chan error, 1)
	begin := time.Now()
	go func() { res <- c.Provision(context.Background(), topic, late) }()
	select {
	case err := <-res:
		took := time.Since(begin)
		t.Logf("Provision with the broker silent: %v after %v", err, took.Round(time.Millisecond))
		if !errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("Provision with the broker silent: %v, want an error wrapping messaging.ErrUnavailable", err)
		}
		if limit := fault.AdminUnavailableTimeout + fault.AdminMargin; took > limit {
			t.Errorf("Provision with the broker silent returned after %v, want within %v", took.Round(time.Millisecond), limit)
		}
	case <-time.After(fault.AdminGiveUp):
		t.Fatalf("Provision with the broker silent had not returned after %v", fault.AdminGiveUp)
	}
	// The client redials meanwhile, into the silence: the next call waits
	// for it in vain, and the restore comes with the redial's handshake
	// under way, its first bytes lost.
	if _, err := c.TopicExists(context.Background(), topic); !errors.Is(err, messaging.ErrUnavailable) {
		t.Errorf("TopicExists with the broker silent: %v, want an error wrapping messaging.ErrUnavailable", err)
	}
	p.Restore()
	restored := time.Now()
	// That redial is given up once the broker has answered nothing for
	// the unavailable timeout (not after amqp091's handshake timeout,
	// 30s), and the next succeeds.
	ctx, cancel := context.WithTimeout(t.Context(), fault.AdminGiveUp)
	defer cancel()
	if err := c.Provision(ctx, topic, late); err != nil {
		t.Fatalf("Provision once the broker answers again: %v", err)
	}
	took := time.Since(restored)
	t.Logf("Provision once the broker answers again: done %v after the restore", took.Round(time.Millisecond))
	if limit := fault.AdminUnavailableTimeout + fault.AdminMargin; took > limit {
		t.Errorf("Provision once the broker answers again took %v after the restore, want within %v", took.Round(time.Millisecond), limit)
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(late))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 10*time.Second)
	st, err := direct.Inspect(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Groups) != 2 {
		t.Errorf("groups after the Provision once the broker answers again: %+v, want %s and %s", st.Groups, group, late)
	}
}

// TestCloseWhileSilentWithSubscription: with a subscription running when
// the broker falls silent, Close returns within about unavailable_timeout
// (fault.CloseWhileUnreachable): the subscription's close does not wait
// for the broker's close-ok until the engine's settle timeout.
func TestCloseWhileSilentWithSubscription(t *testing.T) {
	c, p, direct := openProxied(t, "?unavailable_timeout=1s")
	topic, group := integration.UniqueName(t, "hushsub"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)
	if _, err := c.Subscribe(t.Context(), topic, integration.NewCollector().Handler(), messaging.Group(group)); err != nil {
		t.Fatal(err)
	}
	p.Silence()
	fault.CloseWhileUnreachable(t, c)
}

// TestPublishWhileSilent: with the broker silent (fault.Proxy.Silence:
// it takes the messages and answers nothing), Publish and PublishAsync
// fail with messaging.ErrUnavailable about unavailable_timeout after the
// call, without a deadline of their own, whether the topic was declared
// on the connection before (the confirm is awaited) or not (its
// declaration is); they used to wait for the confirm until ctx ended, or
// for amqp091's heartbeat to find the connection dead.
func TestPublishWhileSilent(t *testing.T) {
	for _, declared := range []bool{true, false} {
		t.Run(map[bool]string{true: "confirm", false: "declaration"}[declared], func(t *testing.T) {
			c, p, direct := openProxied(t, "?unavailable_timeout=1s")
			topic, group := integration.UniqueName(t, "silpub"), integration.UniqueName(t, "g")
			deleteAtEnd(t, direct, topic)
			if err := c.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			if declared {
				if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("before")}); err != nil {
					t.Fatal(err)
				}
			}
			p.Silence()
			res := make(chan error, 2)
			begin := time.Now()
			go func() { res <- c.Publish(context.Background(), topic, &messaging.Message{Payload: []byte("sync")}) }()
			c.PublishAsync(context.Background(), topic, &messaging.Message{Payload: []byte("async")}, func(_ *messaging.Message, err error) { res <- err })
			for range 2 {
				select {
				case err := <-res:
					took := time.Since(begin)
					t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
					if !errors.Is(err, messaging.ErrUnavailable) {
						t.Errorf("publish to a silent broker: %v after %v, want messaging.ErrUnavailable", err, took)
					}
					if limit := fault.AdminUnavailableTimeout + 800*time.Millisecond; took > limit || took < 900*time.Millisecond {
						t.Errorf("publish to a silent broker failed after %v with unavailable_timeout=1s, want about 1s", took.Round(time.Millisecond))
					}
				case <-time.After(fault.AdminGiveUp):
					t.Fatalf("publish to a silent broker had no result %v after the call", fault.AdminGiveUp)
				}
			}
		})
	}
}

// TestPublishAfterAnotherGaveUpOnSilence: two calls wait on a silent
// broker, the second begun 200ms after the first. The first gives the
// connection up once its unavailable timeout has passed; the second, which
// has waited in silence since it began, fails once its own has passed
// (about 1s after its call), not after a further timeout spent waiting for
// a new connection (2s after the first call began, 1.8s after its own: CI
// met it when the Publish goroutine of TestPublishWhileSilent started a few
// milliseconds after PublishAsync queued its message). The second call
// waits either for the answer to channel.open ("open": the pool has no
// channel left) or for its confirm ("confirm": earlier publishing left
// channels in the pool).
func TestPublishAfterAnotherGaveUpOnSilence(t *testing.T) {
	t.Parallel() // waits on its own proxies
	const offset = 200 * time.Millisecond
	for _, confirm := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "confirm"}[confirm], func(t *testing.T) {
			t.Parallel()
			c, p, direct := openProxied(t, "?unavailable_timeout=1s")
			topic, group := integration.UniqueName(t, "silsecond"), integration.UniqueName(t, "g")
			deleteAtEnd(t, direct, topic)
			if err := c.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			n := 1 // declares the topic on the connection
			if confirm {
				// In several lanes at once, each batch on a channel of
				// its own: with every answer late, the lanes' first
				// batches are all in flight together, so the pool keeps
				// several channels, one for each call below.
				n = 2000
				p.SetLatency(20 * time.Millisecond)
			}
			for i := range n {
				c.PublishAsync(t.Context(), topic, &messaging.Message{Key: strconv.Itoa(i % 8), Payload: []byte("before")}, func(*messaging.Message, error) {})
			}
			if err := c.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			p.SetLatency(0)
			p.Silence()
			first := make(chan error, 1)
			c.PublishAsync(context.Background(), topic, &messaging.Message{Payload: []byte("first")}, func(_ *messaging.Message, err error) { first <- err })
			<-time.After(offset) // the scenario: the second call begins later
			begin := time.Now()
			err := c.Publish(context.Background(), topic, &messaging.Message{Payload: []byte("second")})
			took := time.Since(begin)
			t.Logf("second call failed after %v: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, messaging.ErrUnavailable) {
				t.Fatalf("second call: %v, want messaging.ErrUnavailable", err)
			}
			if took < 900*time.Millisecond || took > 1500*time.Millisecond {
				t.Errorf("second call failed %v after it began, want about its unavailable_timeout (1s)", took.Round(time.Millisecond))
			}
			select {
			case err := <-first:
				if !errors.Is(err, messaging.ErrUnavailable) {
					t.Errorf("first call: %v, want messaging.ErrUnavailable", err)
				}
			case <-time.After(fault.AdminGiveUp):
				t.Fatalf("first call had no result %v after the second's", fault.AdminGiveUp)
			}
		})
	}
}

// TestPublishToSlowBroker: a broker that confirms slowly (see slowLatency)
// but within unavailable_timeout of its last answer is not unavailable:
// calls queued behind each other's confirms, taking longer than the
// timeout in all, succeed.
func TestPublishToSlowBroker(t *testing.T) {
	t.Parallel() // waits on its own slow proxy
	c, p, direct := openProxied(t, "?unavailable_timeout="+slowUnavailable.String())
	topic, group := integration.UniqueName(t, "slowpub"), integration.UniqueName(t, "g")
	deleteAtEnd(t, direct, topic)
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	// A topic provisioned through another client: this one declares it
	// on its connection before its first publish (round trips of their
	// own before the confirm's).
	other, otherGroup := integration.UniqueName(t, "slownew"), integration.UniqueName(t, "g")
	deleteAtEnd(t, direct, other)
	if err := direct.Provision(t.Context(), other, otherGroup); err != nil {
		t.Fatal(err)
	}
	p.SetLatency(slowLatency)
	var msgs []*messaging.Message
	for range 3 {
		msgs = append(msgs, &messaging.Message{Payload: []byte("slow")})
	}
	begin := time.Now()
	err := c.Publish(context.Background(), other, msgs[0])
	t.Logf("Publish to a topic not declared on the connection, on a slow broker: %v after %v", err, time.Since(begin).Round(time.Millisecond))
	if err != nil {
		t.Errorf("Publish to a topic not declared on the connection, on a slow broker: %v", err)
	}
	errs := make(chan error, len(msgs))
	begin = time.Now()
	for _, m := range msgs {
		go func() { errs <- c.Publish(context.Background(), topic, m) }()
	}
	for range msgs {
		if err := <-errs; err != nil {
			t.Errorf("Publish on a slow broker: %v after %v", err, time.Since(begin).Round(time.Millisecond))
		}
	}
	t.Logf("%d Publish calls on a slow broker done after %v", len(msgs), time.Since(begin).Round(time.Millisecond))
}

// TestPublishCtxWhileSilent: with the broker silent and a long
// unavailable_timeout (10s), Publish returns when its ctx ends (0.5s),
// with ctx's error, whether it waits for the confirm (a channel open
// already) or for channel.open (the client's first Publish); it used to
// wait out the unavailable timeout for channel.open.
func TestPublishCtxWhileSilent(t *testing.T) {
	for _, opened := range []bool{true, false} {
		t.Run(map[bool]string{true: "confirm", false: "channel"}[opened], func(t *testing.T) {
			t.Parallel()
			c, p, direct := openProxied(t, "?unavailable_timeout=10s")
			topic, group := integration.UniqueName(t, "silctx"), integration.UniqueName(t, "g")
			deleteAtEnd(t, direct, topic)
			if err := direct.Provision(t.Context(), topic, group); err != nil {
				t.Fatal(err)
			}
			if opened {
				if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("before")}); err != nil {
					t.Fatal(err)
				}
			}
			p.Silence()
			t.Cleanup(p.Restore) // before Close, which would wait out the silence
			const wait = 500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			begin := time.Now()
			err := c.Publish(ctx, topic, &messaging.Message{Payload: []byte("silent")})
			took := time.Since(begin)
			t.Logf("Publish with a %v ctx to a silent broker: %v after %v", wait, err, took.Round(time.Millisecond))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Publish: %v, want an error wrapping context.DeadlineExceeded", err)
			}
			if limit := wait + 800*time.Millisecond; took > limit {
				t.Errorf("Publish returned %v after the call, want about %v (its ctx's end; unavailable_timeout is 10s)", took.Round(time.Millisecond), wait)
			}
		})
	}
}
