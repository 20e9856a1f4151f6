package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
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

// queueIDs takes every message from queue through a connection of its own
// to url and returns their IDs.
func queueIDs(t *testing.T, url, queue string) []string {
	t.Helper()
	_, ch := rawChannel(t, url)
	var ids []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ids
		}
		ids = append(ids, d.MessageId)
	}
}

// proxied returns a fault proxy to the shared broker and the broker's URL
// through it with query.
func proxied(t *testing.T, query string) (*fault.Proxy, string, string) {
	t.Helper()
	direct := rabbitmqtest.Broker.Endpoint(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := fault.NewProxy(t, u.Host)
	u.Host = p.Addr()
	u.RawQuery = query
	return p, u.String(), direct
}

// TestPublishAsyncCtxEndsWhileWaitingForConnection: a PublishAsync
// message whose ctx ends while its batch waits for a connection (the
// broker unreachable) fails with ctx's error and is not sent when the
// connection comes back; a message of the same batch whose ctx lives on is
// sent.
func TestPublishAsyncCtxEndsWhileWaitingForConnection(t *testing.T) {
	p, viaProxy, direct := proxied(t, "unavailable_timeout=15s")
	c := rabbitmqtest.Open(t, viaProxy)
	topic, group := integration.UniqueName(t, "ctxwait"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	res := newAsyncResults()
	kept := &messaging.Message{Key: "k", Payload: []byte("kept")}
	late := &messaging.Message{Key: "k", Payload: []byte("late")}
	// The subject: a ctx that ends while the message waits for the
	// connection (its lane took it at once: nothing else is queued).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c.PublishAsync(context.Background(), topic, kept, res.done)
	c.PublishAsync(ctx, topic, late, res.done)
	<-ctx.Done()
	if n, err := res.result(late); n != 0 {
		t.Fatalf("late ended while the broker was unreachable: %v", err)
	}
	p.Restore()
	flushKeptLate(t, c, res, kept, late, "while it waited for the connection")
	if ids := queueIDs(t, direct, rabbitmq.GroupQueueName(topic, group)); !slices.Equal(ids, []string{kept.ID}) {
		t.Errorf("the group queue holds %v, want only kept %s (late is %s)", ids, kept.ID, late.ID)
	}
}

// flushKeptLate flushes c's PublishAsync messages and checks their
// results: kept published, late, whose ctx ended while it waited (while),
// failed with ctx's error.
func flushKeptLate(t *testing.T, c *rabbitmq.Client, res *asyncResults, kept, late *messaging.Message, while string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := res.result(kept); n != 1 || err != nil {
		t.Errorf("kept: %d callbacks, last %v; want one, nil", n, err)
	}
	if n, err := res.result(late); n != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("late (its ctx ended %s): %d callbacks, last %v; want one, context.DeadlineExceeded", while, n, err)
	}
}

// closeQuickly closes c, whose unavailable timeout is unavailable, while
// PublishAsync messages wait (waiting says how), and fails t unless Close
// returns well within that timeout.
func closeQuickly(t *testing.T, c *rabbitmq.Client, unavailable time.Duration, waiting string) {
	t.Helper()
	begin := time.Now()
	closed := make(chan struct{})
	go func() { _ = c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * unavailable):
		t.Fatalf("Close has not returned after %v", 2*unavailable)
	}
	if took := time.Since(begin); took > unavailable/2 {
		t.Errorf("Close took %v with %s, want well within unavailable_timeout (%v)", took.Round(time.Millisecond), waiting, unavailable)
	}
}

// TestPublishAsyncCloseWhileWaitingForConnection: Close, with a PublishAsync
// batch waiting for a connection (the broker unreachable), fails its
// messages, never sent, with ErrClosed before it returns, and returns at
// once rather than after unavailable_timeout.
func TestPublishAsyncCloseWhileWaitingForConnection(t *testing.T) {
	const unavailable = 10 * time.Second
	p, viaProxy, _ := proxied(t, "unavailable_timeout=10s")
	c := rabbitmqtest.Open(t, viaProxy)
	topic := integration.UniqueName(t, "closewait")
	if err := c.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
		_ = d.DeleteTopic(context.Background(), topic)
	})
	p.Cut()
	res := newAsyncResults()
	var msgs []*messaging.Message
	for i := range 8 {
		m := &messaging.Message{Key: string(rune('a' + i)), Payload: []byte("m")}
		msgs = append(msgs, m)
		c.PublishAsync(context.Background(), topic, m, res.done)
	}
	closeQuickly(t, c, unavailable, "messages waiting for a connection")
	for i, m := range msgs {
		if n, err := res.result(m); n != 1 || !errors.Is(err, messaging.ErrClosed) {
			t.Errorf("message %d: %d callbacks before Close returned, last %v; want one, ErrClosed", i, n, err)
		}
	}
}

// wantFailAlone checks that each of msgs got exactly one result, that the
// messages isBad names failed as badErr accepts (want describes it), and
// that every other message was confirmed: the bad ones failed alone.
func (r *asyncResults) wantFailAlone(t *testing.T, msgs []*messaging.Message, isBad func(i int) bool, badErr func(error) bool, want string) {
	t.Helper()
	failed, others := 0, 0
	for i, m := range msgs {
		n, err := r.result(m)
		bad := isBad(i)
		if !bad {
			others++
		}
		switch {
		case n != 1:
			t.Errorf("message %d: %d callbacks, want 1", i, n)
		case bad && (err == nil || !badErr(err)):
			t.Errorf("message %d: %v, want %s", i, err, want)
		case !bad && err != nil:
			if failed++; failed <= 3 {
				t.Errorf("message %d: %v, want nil (the bad messages fail alone)", i, err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of the %d other messages failed", failed, others)
	}
}

// TestPublishAsyncBrokerRefusesOneMessage: a message the broker refuses by
// closing the channel (larger than its max_message_size, a limit AMQP does
// not tell the client) fails alone with the broker's reason; the messages
// queued around it in its batch are confirmed, each with one result.
func TestPublishAsyncBrokerRefusesOneMessage(t *testing.T) {
	t.Parallel() // its own private node
	n := rabbitmqtest.StartNodeWith(t, func(string) string { return "max_message_size = 4096\n" })
	c := rabbitmqtest.Open(t, n.URL())
	topic, group := integration.UniqueName(t, "refused"), integration.UniqueName(t, "g")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	const total, big = 200, 100
	res := newAsyncResults()
	var msgs []*messaging.Message
	for i := range total {
		m := &messaging.Message{Key: "k", Payload: []byte("m")}
		if i == big {
			m.Payload = make([]byte, 8192)
		}
		msgs = append(msgs, m)
		c.PublishAsync(ctx, topic, m, res.done)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res.wantFailAlone(t, msgs, func(i int) bool { return i == big }, func(err error) bool {
		return errors.Is(err, messaging.ErrMessageTooLarge) && strings.Contains(err.Error(), "max size")
	}, "the broker's refusal (8 KiB, its limit 4 KiB), ErrMessageTooLarge")
	// Publish: the refused message fails alone in its PublishError.
	err := c.Publish(ctx, topic, &messaging.Message{Payload: []byte("a")}, &messaging.Message{Payload: make([]byte, 8192)}, &messaging.Message{Payload: []byte("c")})
	var perr *messaging.PublishError
	if !errors.As(err, &perr) || !slices.Equal(perr.Failed(), []int{1}) || !errors.Is(perr.Errs[1], messaging.ErrMessageTooLarge) {
		t.Errorf("Publish of a refused message between two others: %v, want a PublishError failing message 1 alone with ErrMessageTooLarge", err)
	}
}

// TestPublishAsyncHeaderTooLargeFailsAlone: a PublishAsync message whose
// headers no consumer could receive (larger than frame_max, or more than
// 8192 entries) fails alone with ErrMessageTooLarge, checked before it
// joins a batch: the messages queued around it, in its lane, are
// confirmed, each with one result.
func TestPublishAsyncHeaderTooLargeFailsAlone(t *testing.T) {
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	topic, group := integration.UniqueName(t, "hdrlarge"), integration.UniqueName(t, "g")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Provision(ctx, topic, group); err != nil {
		t.Fatal(err)
	}
	many := messaging.Header{}
	for i := range 8193 {
		many[fmt.Sprint("h", i)] = "v"
	}
	bad := map[int]messaging.Header{
		100: {"big": strings.Repeat("v", 200<<10)}, // above frame_max (128 KiB by default)
		150: many,
	}
	const total = 300
	res := newAsyncResults()
	var msgs []*messaging.Message
	for i := range total {
		m := &messaging.Message{Key: "k", Payload: []byte("m"), Header: bad[i]}
		msgs = append(msgs, m)
		c.PublishAsync(ctx, topic, m, res.done)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res.wantFailAlone(t, msgs, func(i int) bool { _, isBad := bad[i]; return isBad }, func(err error) bool {
		return errors.Is(err, messaging.ErrMessageTooLarge)
	}, "ErrMessageTooLarge (headers too large)")
}

// TestPublishAfterTopicDeletedElsewhere: a client whose connection has
// declared a topic publishes to it again after another client deleted it:
// the broker's refusal (the exchange not found) makes Publish declare the
// topic again and resend, so the message reaches the topic's new stream
// rather than failing.
func TestPublishAfterTopicDeletedElsewhere(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	c, other := rabbitmqtest.Open(t, url, rabbitmq.WithStreams(true)), rabbitmqtest.Open(t, url)
	ctx := t.Context()
	topic := integration.UniqueName(t, "redeclared")
	t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "again"}); err != nil {
		t.Fatalf("Publish after another client deleted the topic: %v, want nil (the topic declared again)", err)
	}
	got := make(chan string, 4)
	sub, err := c.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case id := <-got:
		if id != "again" {
			t.Errorf("read %q first, want \"again\" (the stream declared again holds it alone)", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not read within 30s")
	}
}

// provisionedWithChannel opens a client on the test broker, provisions a
// topic named after prefix (deleted when the test ends) and returns them
// with a raw AMQP channel on the same broker.
func provisionedWithChannel(t *testing.T, prefix string) (*rabbitmq.Client, *amqp.Channel, string) {
	t.Helper()
	direct := rabbitmqtest.Broker.Endpoint(t)
	c := rabbitmqtest.Open(t, direct)
	topic := integration.UniqueName(t, prefix)
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	_, ch := rawChannel(t, direct)
	return c, ch, topic
}

// TestPublishReturnedSameID: of two messages with the same ID in one call,
// routed differently by their keys, the one no queue receives fails with
// ErrUnroutable, the other is confirmed.
func TestPublishReturnedSameID(t *testing.T) {
	c, ch, topic := provisionedWithChannel(t, "sameid")
	ctx := t.Context()
	// A queue of the test's own receives the key "routed" only.
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "routed", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]string{{"routed", "unrouted"}, {"unrouted", "routed"}} {
		msgs := []*messaging.Message{{ID: "same-id", Key: order[0], Payload: []byte("a")}, {ID: "same-id", Key: order[1], Payload: []byte("b")}}
		err := c.Publish(ctx, topic, msgs...)
		var perr *messaging.PublishError
		if !errors.As(err, &perr) {
			t.Fatalf("keys %v: %v, want a PublishError", order, err)
		}
		for i, key := range order {
			if unroutable := errors.Is(perr.Errs[i], rabbitmq.ErrUnroutable); unroutable != (key == "unrouted") {
				t.Errorf("keys %v: message %d (key %q): %v", order, i, key, perr.Errs[i])
			}
		}
	}
}

// TestPublishNacked: a message the broker refuses with a negative confirm
// (here a queue full with overflow reject-publish) fails with ErrNacked,
// by Publish and PublishAsync alike, while the message beside it that
// another queue takes is confirmed: a nack is never taken for a confirm.
func TestPublishNacked(t *testing.T) {
	c, ch, topic := provisionedWithChannel(t, "nacked")
	ctx := t.Context()
	// The key "full" goes to a queue that refuses every message, "ok" to
	// one that takes them.
	full, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-max-length": int64(0), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for q, key := range map[string]string{full.Name: "full", ok.Name: "ok"} {
		if err := ch.QueueBind(q, key, topic, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	msgs := []*messaging.Message{{Key: "full", Payload: []byte("a")}, {Key: "ok", Payload: []byte("b")}}
	err = c.Publish(ctx, topic, msgs...)
	var perr *messaging.PublishError
	if !errors.As(err, &perr) {
		t.Fatalf("Publish: %v, want a PublishError", err)
	}
	if !errors.Is(perr.Errs[0], rabbitmq.ErrNacked) || perr.Errs[1] != nil {
		t.Errorf("Publish: errors %v, want [ErrNacked <nil>]", perr.Errs)
	}

	res := newAsyncResults()
	for _, m := range msgs {
		c.PublishAsync(ctx, topic, m, res.done)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		n, err := res.result(m)
		if n != 1 || errors.Is(err, rabbitmq.ErrNacked) != (i == 0) || (i == 1 && err != nil) {
			t.Errorf("PublishAsync of the message with key %q: %d results, the last %v; want one, ErrNacked for \"full\", nil for \"ok\"", m.Key, n, err)
		}
	}
	if q, err := ch.QueueDeclarePassive(ok.Name, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	} else if q.Messages != 2 {
		t.Errorf("the queue of the key \"ok\" holds %d messages, want 2", q.Messages)
	}
}

// TestPublishAsyncCtxEndsWhileBlocked: a PublishAsync batch that has its
// channel but waits to write because the broker blocks the connection (a
// resource alarm) does not write a message whose ctx ended during the
// wait: it fails with ctx's error once the alarm clears, and the message
// queued behind it is sent.
func TestPublishAsyncCtxEndsWhileBlocked(t *testing.T) {
	t.Parallel() // its own private node
	n, c, topic, group := blockedClient(t, "ctxblocked", 20*time.Second)

	res := newAsyncResults()
	kept := &messaging.Message{Key: "k", Payload: []byte("kept")}
	late := &messaging.Message{Key: "k", Payload: []byte("late")}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c.PublishAsync(ctx, topic, late, res.done)
	c.PublishAsync(context.Background(), topic, kept, res.done)
	<-ctx.Done()
	if n, err := res.result(late); n != 0 {
		t.Fatalf("late ended while the connection was blocked: %v", err)
	}
	setWatermark(t, n, "0.4")
	flushKeptLate(t, c, res, kept, late, "while the connection was blocked")
	for _, id := range queueIDs(t, n.URL(), rabbitmq.GroupQueueName(topic, group)) {
		if id == late.ID {
			t.Errorf("late (%s) is in the group queue", late.ID)
		}
	}
}

// blockedClient starts a private node and a client of it (through a
// proxy) with unavailable timeout d, provisions topic (named after name)
// and group, and returns once a memory alarm on the node has blocked the
// client's connection, the client holding an idle publish channel.
func blockedClient(t *testing.T, name string, d time.Duration) (n *rabbitmqtest.Node, c *rabbitmq.Client, topic, group string) {
	t.Helper()
	n = rabbitmqtest.StartNode(t)
	p := fault.NewProxy(t, n.Addr())
	c = rabbitmqtest.Open(t, "amqp://guest:guest@"+p.Addr()+"/?unavailable_timeout="+d.String())
	topic, group = integration.UniqueName(t, name), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	// Idle publish channels: Publish calls in flight at once, each holding
	// its channel until its confirm comes, 200ms later.
	p.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("before")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	p.SetDelay(0)
	setWatermark(t, n, "absolute", "1")
	t.Cleanup(func() { setWatermark(t, n, "0.4") })
	awaitBlocked(t, n)
	// A publish that makes the broker block the client's connection (its
	// ctx ends, its channel is abandoned; the other stays idle).
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_ = c.Publish(short, topic, &messaging.Message{Payload: []byte("blocks")})
	cancelShort()
	return n, c, topic, group
}

// TestPublishAsyncCloseWhileBlocked: Close, with a PublishAsync batch
// waiting because the broker blocks the connection (a resource alarm),
// fails the message, never written, with ErrClosed at once rather than
// ErrUnavailable after unavailable_timeout: a batch that has its channel
// and waits to write (write), and one to a topic new to the connection
// whose declaration waits (declare).
func TestPublishAsyncCloseWhileBlocked(t *testing.T) {
	t.Parallel() // its own private node
	const unavailable = 12 * time.Second
	for _, tc := range []struct {
		name     string
		newTopic bool   // publish to a topic the connection has not declared
		waitsIn  string // the function the batch waits in
	}{
		{"write", false, "rabbitmq.awaitUnblocked"},
		{"declare", true, "rabbitmq.(*Client).ensureTopicOn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, topic, _ := blockedClient(t, "closeblocked", unavailable)
			if tc.newTopic {
				topic = integration.UniqueName(t, "other") // on the private node
			}
			res := newAsyncResults()
			m := &messaging.Message{Key: "k", Payload: []byte("m")}
			c.PublishAsync(context.Background(), topic, m, res.done)
			fault.AwaitGoroutine(t, tc.waitsIn, "")
			closeQuickly(t, c, unavailable, "a message waiting in "+tc.waitsIn)
			if n, err := res.result(m); n != 1 || !errors.Is(err, messaging.ErrClosed) {
				t.Errorf("the message: %d callbacks before Close returned, last %v; want one, ErrClosed", n, err)
			}
		})
	}
}
