package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestServerCrashLosesNothing publishes N confirmed messages to a private
// server, kills it with SIGKILL while a group consumes them, restarts it on
// the same port and store, and checks by ID that every confirmed message is
// consumed (duplicates are reported, not failures).
func TestServerCrashLosesNothing(t *testing.T) {
	srv := natstest.StartServer(t)
	url := srv.URL() + "?reconnect_wait=100ms"
	pub := natstest.OpenURL(t, url)
	cons := natstest.OpenURL(t, url)
	topic, group := integration.UniqueName(t, "crash"), integration.UniqueName(t, "g")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := pub.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}

	const n, batch = 5000, 100
	payload := make([]byte, 256)
	var published []string
	for b := 0; b < n/batch; b++ {
		msgs := make([]*messaging.Message, batch)
		for i := range msgs {
			msgs[i] = &messaging.Message{ID: fmt.Sprintf("m-%d", b*batch+i), Payload: payload}
		}
		if err := pub.Publish(ctx, topic, msgs...); err != nil {
			t.Fatalf("publish batch %d: %v", b, err)
		}
		for _, m := range msgs {
			published = append(published, m.ID)
		}
	}

	col := integration.NewCollector()
	var handled atomic.Int64
	crashAt := make(chan struct{})
	sub, err := cons.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		col.Add(m)
		if handled.Add(1) == n/4 {
			close(crashAt)
		}
		return nil
	}, messaging.Group(group), messaging.Concurrency(4), messaging.AckDeadline(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	select {
	case <-crashAt:
	case <-ctx.Done():
		t.Fatalf("only %d of %d handled before the crash point", handled.Load(), n)
	}
	srv.Kill()
	t.Logf("server killed after %d deliveries", col.Total())
	srv.Start()
	t.Logf("server restarted on port %d with the same store", srv.Port)

	// The publisher's connection came back too: what it publishes now is
	// consumed as well.
	after := make([]*messaging.Message, batch)
	for i := range after {
		after[i] = &messaging.Message{ID: fmt.Sprintf("after-%d", i), Payload: payload}
	}
	if err := pub.Publish(ctx, topic, after...); err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
	for _, m := range after {
		published = append(published, m.ID)
	}

	col.WaitDistinct(t, len(published), 90*time.Second)
	dups := col.Report(t, published)
	t.Logf("%d duplicates after the crash (acks lost with the server)", dups)
	select {
	case <-sub.Done():
		t.Fatalf("subscription ended across the restart: %v", sub.Err())
	default:
	}
}

// TestKilledConsumerMessagesGoToAnotherMember: a member whose connection
// dies mid-handler leaves its messages unacknowledged; another member of the
// group gets all of them once the ack wait has passed, with Attempt 2.
func TestKilledConsumerMessagesGoToAnotherMember(t *testing.T) {
	const ackWait = time.Second
	ep := natstest.Broker.Endpoint(t)
	victim := natstest.OpenURL(t, ep)
	survivor := natstest.OpenURL(t, ep)
	topic, group := integration.UniqueName(t, "kill"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = survivor.DeleteTopic(context.Background(), topic) })
	if err := survivor.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	const n = 4
	started := make(chan string, n)
	release := make(chan struct{})
	vsub, err := victim.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		started <- m.ID
		<-release
		return nil
	}, messaging.Group(group), messaging.Concurrency(n), messaging.AckDeadline(ackWait))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: fmt.Sprintf("k-%d", i)}
	}
	if err := survivor.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("victim's handlers did not all start")
		}
	}
	natstest.Kill(t, victim) // crash: nothing settled, no more heartbeats
	killed := time.Now()
	col := integration.NewCollector()
	ssub, err := survivor.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.AckDeadline(ackWait))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ssub.Close() })
	col.WaitDistinct(t, n, 30*time.Second)
	col.Report(t, []string{"k-0", "k-1", "k-2", "k-3"})
	// The server's timer restarts with each in-progress signal; the last one
	// can precede the kill by up to a third of the ack wait.
	if waited := time.Since(killed); waited < ackWait/2 {
		t.Errorf("redelivered %v after the crash, well before the ack wait %v", waited, ackWait)
	}
	for _, m := range col.Messages() {
		if m.Attempt < 2 {
			t.Errorf("%s: Attempt %d on redelivery, want >= 2", m.ID, m.Attempt)
		}
	}
	close(release)
	<-vsub.Done()
	if vsub.Err() == nil {
		t.Error("the killed member's subscription ended without an error")
	}
}

// TestSlowHandlerKeepsItsMessage: a handler running for several ack waits
// keeps its message (the adapter sends in-progress heartbeats): another
// member gets nothing meanwhile, and the message is acknowledged once.
// Elapsed time is the subject, so the test waits for it.
func TestSlowHandlerKeepsItsMessage(t *testing.T) {
	const ackWait = time.Second
	slow := natstest.Open(t)
	other := natstest.Open(t)
	topic, group := integration.UniqueName(t, "slow"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
	if err := other.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	started, finished := make(chan struct{}), make(chan struct{})
	_, err := slow.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
		close(started)
		time.Sleep(3 * ackWait) // the handler's duration is what is tested
		close(finished)
		return nil
	}, messaging.Group(group), messaging.AckDeadline(ackWait))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(t.Context(), topic, &messaging.Message{ID: "slow-one"}); err != nil {
		t.Fatal(err)
	}
	<-started
	col := integration.NewCollector()
	if _, err := other.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group), messaging.AckDeadline(ackWait)); err != nil {
		t.Fatal(err)
	}
	<-finished
	// A redelivery would have come during the handler's run; after it the
	// ack is on its way. Observe a further ack wait for a late one.
	if col.Wait(2*ackWait, func(c *integration.Collector) bool { return c.Total() > 0 }) {
		t.Fatalf("message redelivered to another member while its handler ran (attempt %d)", col.Messages()[0].Attempt)
	}
}

// TestPublishHonoursContextWhileServerDown: with the server gone, Publish
// returns when its context ends, reporting every message failed with
// messaging.ErrUnavailable; without a deadline it fails the same way after
// unavailable_timeout; after the server is back, publishing works again on
// the same client within a second.
func TestPublishHonoursContextWhileServerDown(t *testing.T) {
	srv := natstest.StartServer(t)
	c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms&unavailable_timeout=1s")
	topic := integration.UniqueName(t, "down")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	killAndWait(t, c, srv) // the client knows: the messages wait for the connection
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := c.Publish(ctx, topic, &messaging.Message{ID: "during-1"}, &messaging.Message{ID: "during-2"})
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Failed()) != 2 || !errors.Is(err, messaging.ErrUnavailable) {
		t.Fatalf("Publish with the server down: %v, want a PublishError for both messages wrapping ErrUnavailable", err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("Publish took %v with a 500ms context", took)
	}
	begin = time.Now()
	err = c.Publish(context.Background(), topic, &messaging.Message{ID: "during-3"})
	took := time.Since(begin)
	if !errors.Is(err, messaging.ErrUnavailable) || took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("Publish without a deadline, server down: %v after %v, want ErrUnavailable after the 1s unavailable_timeout", err, took)
	}
	t.Logf("Publish without a deadline failed after %v: %v", took.Round(time.Millisecond), err)
	srv.Start()
	back := time.Now()
	ctx2, cancel2 := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel2()
	if err := c.Publish(ctx2, topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	took = time.Since(back)
	t.Logf("first Publish after the restart confirmed %v after the server was ready", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("publishing resumed %v after the server was ready, want within 1s", took)
	}
}

// TestEphemeralSubscriptionSurvivesRestart: a group-less subscription and a
// Stream read keep delivering across a server crash and restart.
func TestEphemeralSubscriptionSurvivesRestart(t *testing.T) {
	srv := natstest.StartServer(t)
	c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms")
	topic := integration.UniqueName(t, "eph")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	eph, reader := integration.NewCollector(), integration.NewCollector()
	sub, err := c.Subscribe(ctx, topic, eph.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	rsub, err := c.Read(ctx, topic, messaging.Latest, reader.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rsub.Close() })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	eph.WaitDistinct(t, 1, 10*time.Second)
	reader.WaitDistinct(t, 1, 10*time.Second)
	srv.Kill()
	srv.Start()
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	eph.WaitDistinct(t, 2, 30*time.Second)
	reader.WaitDistinct(t, 2, 30*time.Second)
	eph.Report(t, []string{"before", "after"})
	reader.Report(t, []string{"before", "after"})
}

// TestAuthFromURL: user/password and token authentication given in the URL
// reach the server; a wrong password fails Open without showing it.
func TestAuthFromURL(t *testing.T) {
	t.Run("user-password", func(t *testing.T) {
		srv := natstest.StartServer(t, "--user", "app", "--pass", "pa55-word")
		host := strings.TrimPrefix(srv.URL(), "nats://")
		c := natstest.OpenURL(t, "nats://app:pa55-word@"+host)
		topic := integration.UniqueName(t, "auth")
		if err := c.Publish(t.Context(), topic, &messaging.Message{}); err != nil {
			t.Fatalf("publish with user/password auth: %v", err)
		}
		_, err := messaging.Open(t.Context(), "nats://app:wr0ng-pw@"+host)
		if err == nil {
			t.Fatal("Open with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), "wr0ng-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	})
	t.Run("token", func(t *testing.T) {
		srv := natstest.StartServer(t, "--auth", "t0ken-value")
		host := strings.TrimPrefix(srv.URL(), "nats://")
		for _, u := range []string{"nats://t0ken-value@" + host, "nats://" + host + "?token=t0ken-value"} {
			c := natstest.OpenURL(t, u)
			if err := c.Publish(t.Context(), integration.UniqueName(t, "auth"), &messaging.Message{}); err != nil {
				t.Fatalf("publish with token auth: %v", err)
			}
		}
		if _, err := messaging.Open(t.Context(), "nats://"+host); err == nil {
			t.Fatal("Open without the token succeeded")
		}
	})
}

// TestExistingStreamsSurviveRestart: in bind mode, where a consumer found
// missing can mean a deleted topic, a group subscription, a group-less one
// and a Read keep delivering across a server crash and restart.
func TestExistingStreamsSurviveRestart(t *testing.T) {
	srv := natstest.StartServer(t)
	c := natstest.OpenURL(t, srv.URL()+"?reconnect_wait=100ms", natsadapter.WithExistingStreams())
	prefix := integration.UniqueName(t, "bindrestart")
	topic := prefix + ".t"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.JetStream().CreateStream(ctx, jetstreamConfig(strings.ReplaceAll(prefix, "-", "_"), prefix+".>")); err != nil {
		t.Fatal(err)
	}
	group, eph, reader := integration.NewCollector(), integration.NewCollector(), integration.NewCollector()
	var subs []messaging.Subscription
	for _, start := range []func() (messaging.Subscription, error){
		func() (messaging.Subscription, error) {
			return c.Subscribe(ctx, topic, group.Handler(), messaging.Group("g"))
		},
		func() (messaging.Subscription, error) { return c.Subscribe(ctx, topic, eph.Handler()) },
		func() (messaging.Subscription, error) { return c.Read(ctx, topic, messaging.Latest, reader.Handler()) },
	} {
		sub, err := start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		subs = append(subs, sub)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	for _, col := range []*integration.Collector{group, eph, reader} {
		col.WaitDistinct(t, 1, 10*time.Second)
	}
	srv.Kill()
	srv.Start()
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	for _, col := range []*integration.Collector{group, eph, reader} {
		col.WaitDistinct(t, 2, 30*time.Second)
		col.Report(t, []string{"before", "after"})
	}
	for i, sub := range subs {
		select {
		case <-sub.Done():
			t.Errorf("subscription %d ended across the restart: %v", i, sub.Err())
		default:
		}
	}
}
