package rabbitmqtest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

func withQuery(t *testing.T, base, query string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = query
	return u.String()
}

// TestOpenURL: messaging.Open reaches the adapter through its scheme, URL
// parameters become options, unknown parameters are rejected, and a wrong
// password does not show in the error.
func TestOpenURL(t *testing.T) {
	base := rabbitmqtest.Broker.Endpoint(t)
	ctx := t.Context()
	c, err := messaging.Open(ctx, withQuery(t, base, "streams=true&prefetch=10&max_message_size=64KiB&connection_name=test&heartbeat=5s"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps := c.Capabilities()
	if !caps.Replay || !caps.ReplayByTime || caps.MaxMessageSize != 64<<10 || caps.GroupStartAt {
		t.Errorf("capabilities from URL: %+v", caps)
	}
	if _, ok := c.(messaging.Stream); !ok {
		t.Error("client does not implement messaging.Stream")
	}

	_, err = messaging.Open(ctx, withQuery(t, base, "prefetch=10&bogus=1"))
	if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown parameter: %v, want ErrInvalidOption naming it", err)
	}
	_, err = messaging.Open(ctx, withQuery(t, base, "prefetch=zero"))
	if !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("malformed parameter: %v, want ErrInvalidOption", err)
	}

	u, _ := url.Parse(base)
	u.User = url.UserPassword("guest", "s3cret-wrong-pw")
	_, err = messaging.Open(ctx, u.String())
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-wrong-pw") {
		t.Errorf("error shows the password: %v", err)
	}
}

// TestEphemeralMaxAttempts: a subscription without a group (an exclusive
// classic queue, which counts no deliveries) counts Attempt and stops at
// MaxAttempts; Attempt stayed 1 and the failing message was requeued
// thousands of times a second.
func TestEphemeralMaxAttempts(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	topic := integration.UniqueName(t, "ephattempts")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	attempts := make(chan int, 100)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		select {
		case attempts <- m.Attempt:
		default:
		}
		return errors.New("always fails")
	}, messaging.MaxAttempts(3))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		select {
		case got := <-attempts:
			if got != want {
				t.Fatalf("handler call %d has Attempt %d", want, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d handler calls in 10s, want 3", want-1)
		}
	}
	select {
	case got := <-attempts: // absence: a short bounded wait
		t.Fatalf("handler called again (Attempt %d) after MaxAttempts(3)", got)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestSubscribePrefetchAboveAMQPLimit: Subscribe with a Prefetch above
// 65535 (AMQP's 16-bit prefetch-count) fails with ErrInvalidOption naming
// the limit; amqp091 sent 65536 as 0 (no limit) and 70000 as 4464.
func TestSubscribePrefetchAboveAMQPLimit(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	topic := integration.UniqueName(t, "prefetch")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	nop := func(context.Context, *messaging.Message) error { return nil }
	for _, opts := range [][]messaging.SubscribeOption{
		{messaging.Prefetch(65536)},
		{messaging.Prefetch(70000), messaging.Group(integration.UniqueName(t, "g"))},
	} {
		sub, err := c.Subscribe(t.Context(), topic, nop, opts...)
		if err == nil {
			_ = sub.Close()
		}
		if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "65535") {
			t.Errorf("Subscribe with Prefetch above 65535: %v, want ErrInvalidOption naming 65535", err)
		}
	}
	sub, err := c.Subscribe(t.Context(), topic, nop, messaging.Prefetch(65535))
	if err != nil {
		t.Fatalf("Subscribe with Prefetch(65535): %v", err)
	}
	_ = sub.Close()
}

// TestPrefetchBoundsUnacknowledged: a subscription holds at most its
// prefetch (here WithPrefetch(2), the client's default) of the group's
// messages unacknowledged: while its handler is stuck, the rest stay in
// the queue for the group's other members. Without the QoS the broker
// pushed every message to the stuck subscription.
func TestPrefetchBoundsUnacknowledged(t *testing.T) {
	const total, prefetch = 10, 2
	url := rabbitmqtest.Broker.Endpoint(t)
	stuck, other := rabbitmqtest.Open(t, url, rabbitmq.WithPrefetch(prefetch)), rabbitmqtest.Open(t, url)
	topic, group := integration.UniqueName(t, "prefetch"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
	if err := other.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{}, total)
	sub, err := stuck.Subscribe(t.Context(), topic, func(ctx context.Context, _ *messaging.Message) error {
		held <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group(group), messaging.Concurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs := make([]*messaging.Message, total)
	for i := range msgs {
		msgs[i] = messaging.NewMessage([]byte("m"))
	}
	if err := other.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the stuck subscription got nothing")
	}
	col := integration.NewCollector()
	sub2, err := other.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub2.Close() })
	col.WaitDistinct(t, total-prefetch, 30*time.Second)
}

// TestPublishUnroutable: with no queue bound to the topic, every message of
// the call fails with ErrUnroutable; once a group exists, Publish succeeds.
func TestPublishUnroutable(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	ctx := t.Context()
	topic := integration.UniqueName(t, "unroutable")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	msgs := []*messaging.Message{messaging.NewMessage([]byte("a")), messaging.NewMessage([]byte("b"))}
	err := c.Publish(ctx, topic, msgs...)
	var perr *messaging.PublishError
	if !errors.As(err, &perr) || len(perr.Failed()) != 2 || !errors.Is(err, rabbitmq.ErrUnroutable) {
		t.Fatalf("Publish with no queue bound: %v, want a PublishError with 2 ErrUnroutable", err)
	}
	if err := c.Provision(ctx, topic, integration.UniqueName(t, "g")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish after Provision: %v", err)
	}
}

// TestDeadLetterExchange: with WithDeadLetterExchange, a message failed with
// Permanent and one that used up MaxAttempts are dead-lettered by the broker
// with payload, key, headers and x-death intact.
func TestDeadLetterExchange(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	dlx := integration.UniqueName(t, "dlx")
	c := rabbitmqtest.Open(t, url, rabbitmq.WithDeadLetterExchange(dlx))
	if !c.Capabilities().NativeDeadLetter {
		t.Fatal("NativeDeadLetter not claimed with a dead-letter exchange")
	}
	ctx := t.Context()
	topic, group := integration.UniqueName(t, "dl"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })

	raw, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() }) // after the deletions below
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	dlq := dlx + "-q"
	t.Cleanup(func() {
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(dlq, false, false, false)
			_ = ch.ExchangeDelete(dlx, false, false)
		}
	})
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	dead, err := ch.Consume(dlq, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		col.Add(m)
		if m.ID == "poison" {
			return messaging.Permanent(errors.New("cannot decode"))
		}
		return errors.New("still failing")
	}, messaging.Group(group), messaging.MaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(ctx, topic,
		&messaging.Message{ID: "poison", Key: "k1", Payload: []byte("p"), Header: messaging.Header{"h": "1"}},
		&messaging.Message{ID: "fails", Key: "k2", Payload: []byte("f")},
	); err != nil {
		t.Fatal(err)
	}
	got := map[string]amqp.Delivery{}
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case d := <-dead:
			got[d.MessageId] = d
		case <-timeout:
			t.Fatalf("dead-lettered: %v of poison, fails", len(got))
		}
	}
	p := got["poison"]
	if string(p.Body) != "p" || p.RoutingKey != "k1" || p.Headers["h"] != "1" {
		t.Errorf("dead-lettered poison: body %q key %q headers %v", p.Body, p.RoutingKey, p.Headers)
	}
	if deaths, ok := p.Headers["x-death"].([]any); !ok || len(deaths) == 0 {
		t.Errorf("dead-lettered message without x-death: %v", p.Headers)
	} else if reason := deaths[0].(amqp.Table)["reason"]; reason != "rejected" {
		t.Errorf("x-death reason %v, want rejected", reason)
	}
	if n := col.Count("poison"); n != 1 {
		t.Errorf("poison delivered %d times, want 1", n)
	}
	if n := col.Count("fails"); n != 2 {
		t.Errorf("failing message delivered %d times with MaxAttempts(2), want 2", n)
	}
}

// TestRedialRefusesRecovery: a connection WithRedial returns with amqp091's
// experimental Recovery enabled is refused as New refuses one: closed
// unused, the refusal logged, and the client fails as one that cannot
// redial (Publish with ErrConnectionLost and ErrInvalidOption, the error
// naming Recovery). Used, amqp091 would reopen its channels itself with
// delivery tags starting again at 1, and the client's acks would settle
// other messages.
func TestRedialRefusesRecovery(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	redialled := make(chan *amqp.Connection, 16)
	t.Cleanup(func() {
		for {
			select {
			case rc := <-redialled:
				_ = rc.Close()
			default:
				return
			}
		}
	})
	recovery := amqp.Config{Recovery: &amqp.Recovery{ReconnectionConfig: &amqp.ReconnectionConfig{MaxRetryCount: 3, RetryInterval: 100 * time.Millisecond}}}
	refused := make(chan error, 16)
	c, err := rabbitmq.New(conn, rabbitmq.WithReconnectBackoff(50*time.Millisecond, 200*time.Millisecond),
		rabbitmq.WithLogger(slog.New(logErrors{slog.Default().Handler(), "rabbitmq: redialled connection refused", refused})),
		rabbitmq.WithRedial(func(context.Context) (*amqp.Connection, error) {
			rc, err := amqp.DialConfig(url, recovery)
			if err == nil {
				redialled <- rc
			}
			return rc, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic, group := integration.UniqueName(t, "recovery"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = rabbitmqtest.Open(t, url).DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, messaging.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}

	_ = conn.Close() // the client redials
	var rc *amqp.Connection
	select {
	case rc = <-redialled:
		redialled <- rc // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("no redial in 30s")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = c.Publish(ctx, topic, messaging.NewMessage(nil))
	if err == nil {
		t.Fatal("Publish succeeded on the redialled connection with Recovery enabled")
	}
	if !errors.Is(err, rabbitmq.ErrConnectionLost) || !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "Recovery") {
		t.Errorf("Publish: %v, want ErrConnectionLost and ErrInvalidOption naming Recovery", err)
	}
	select {
	case err := <-refused:
		if err == nil || !strings.Contains(err.Error(), "Recovery") {
			t.Errorf("refusal logged with error %v, want one naming Recovery", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the refusal was not logged")
	}
	integration.Eventually(t, 10*time.Second, func() error {
		if !rc.IsClosed() {
			return errors.New("the refused connection was left open")
		}
		return nil
	})
}

// TestEphemeralGetsEveryKey: a subscription without a group gets every
// message of its topic, whatever its Key (the routing key), as a group
// does: its queue is bound with "#", not only to the empty key.
func TestEphemeralGetsEveryKey(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	topic := integration.UniqueName(t, "keys")
	deleteAtEnd(t, c, topic)
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs := []*messaging.Message{{ID: "no-key"}, {ID: "key", Key: "k1"}, {ID: "dotted", Key: "a.b.c"}}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, len(msgs), 30*time.Second)
}

// TestCloseClosesOpenedConnection: Close closes the connection Open
// dialled (unlike one given to New): none stays open through the proxy
// afterwards.
func TestCloseClosesOpenedConnection(t *testing.T) {
	p, viaProxy, _ := proxied(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := rabbitmq.Open(ctx, viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	topic := integration.UniqueName(t, "close")
	t.Cleanup(func() {
		_ = rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t)).DeleteTopic(context.Background(), topic)
	})
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if n := p.Conns(); n == 0 {
		t.Fatal("no connection through the proxy")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); p.Conns() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open through the proxy 30s after Close", p.Conns())
		}
		time.Sleep(20 * time.Millisecond) // polling the proxy's count
	}
}

// TestNewManagementErrorHidesPassword: New (whose errors no URL redaction
// wraps, unlike Open's) rejects an invalid management URL without showing
// the password it holds.
func TestNewManagementErrorHidesPassword(t *testing.T) {
	const secret = "s3cret-Passw0rd"
	conn, err := amqp.Dial(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, bad := range []string{"ftp://guest:" + secret + "@127.0.0.1:15672", "http://guest:" + secret + "@"} {
		c, err := rabbitmq.New(conn, rabbitmq.WithManagement(bad))
		if c != nil {
			_ = c.Close()
			t.Fatal("New with an invalid management URL returned a client")
		}
		if !errors.Is(err, messaging.ErrInvalidOption) || strings.Contains(err.Error(), secret) {
			t.Errorf("New with an invalid management URL holding a password: %v, want ErrInvalidOption without the password", err)
		}
	}
}

// TestNewWithExistingConnection: New wraps a caller's connection and leaves
// it open on Close; without WithRedial a lost connection ends subscriptions
// and fails Publish with ErrConnectionLost.
func TestNewWithExistingConnection(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := rabbitmq.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	topic, group := integration.UniqueName(t, "new"), integration.UniqueName(t, "g")
	t.Cleanup(func() {
		admin := rabbitmqtest.Open(t, url)
		_ = admin.DeleteTopic(context.Background(), topic)
	})
	col := integration.NewCollector()
	sub, err := c.Subscribe(ctx, topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	msg := messaging.NewMessage([]byte("hello"))
	if err := c.Publish(ctx, topic, msg); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 30*time.Second)

	_ = conn.Close()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("subscription still running after its connection was closed")
	}
	if !errors.Is(sub.Err(), rabbitmq.ErrConnectionLost) {
		t.Errorf("subscription Err: %v, want ErrConnectionLost", sub.Err())
	}
	if err := c.Publish(ctx, topic, messaging.NewMessage(nil)); !errors.Is(err, rabbitmq.ErrConnectionLost) {
		t.Errorf("Publish after the connection was lost: %v, want ErrConnectionLost", err)
	}
	_ = c.Close()

	conn2, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	c2, err := rabbitmq.New(conn2)
	if err != nil {
		t.Fatal(err)
	}
	_ = c2.Close()
	if conn2.IsClosed() {
		t.Error("Close closed the connection given to New")
	}
}

// TestTimeTravelsInTheID: a message whose ID and Time Publish made carries
// no time header (its version 7 UUID ID holds the time beyond the AMQP
// timestamp's seconds); one with its own ID keeps its nanoseconds in the
// x-msgkit-time header; a version 7 ID from another publisher that does not
// agree with the AMQP timestamp is not taken for the time.
func TestTimeTravelsInTheID(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	c := rabbitmqtest.Open(t, url)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	topic, rawGroup, group := integration.UniqueName(t, "time"), integration.UniqueName(t, "raw"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(ctx, topic, rawGroup, group); err != nil {
		t.Fatal(err)
	}
	fresh := messaging.NewMessage([]byte("fresh"))
	own := &messaging.Message{ID: "own-id", Time: time.Unix(1_800_000_000, 123_456_789), Payload: []byte("own")}
	if err := c.Publish(ctx, topic, fresh, own); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Another publisher: a version 7 UUID from mid-2024, timestamp now.
	foreignSent := time.Now()
	if err := ch.PublishWithContext(ctx, topic, "", false, false, amqp.Publishing{MessageId: "01906b97-5c00-7123-8000-000000000000", Timestamp: foreignSent, Body: []byte("foreign")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		id         string
		timeHeader bool
	}{{fresh.ID, false}, {"own-id", true}} {
		d, ok, err := ch.Get(topic+"~"+rawGroup, true)
		if err != nil || !ok {
			t.Fatalf("raw get: %v %v", ok, err)
		}
		_, has := d.Headers["x-msgkit-time"]
		if d.MessageId != want.id || has != want.timeHeader {
			t.Errorf("message %q on the wire: x-msgkit-time header present %v, want %v (headers %v)", d.MessageId, has, want.timeHeader, d.Headers)
		}
	}

	got := make(chan *messaging.Message, 3)
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error { got <- m; return nil }, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	want := map[string]time.Time{fresh.ID: fresh.Time, "own-id": own.Time, "01906b97-5c00-7123-8000-000000000000": time.Unix(foreignSent.Unix(), 0)}
	for range 3 {
		select {
		case m := <-got:
			if w, ok := want[m.ID]; !ok || !m.Time.Equal(w) {
				t.Errorf("message %q: Time %v, want %v", m.ID, m.Time, w)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("messages not delivered")
		}
	}
}
