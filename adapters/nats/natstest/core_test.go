package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// TestCoreQueueGroups: in core mode members of a group (a queue group)
// share the messages, each handled once, and another group gets them all.
func TestCoreQueueGroups(t *testing.T) {
	a := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	b := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core")
	work, audit := integration.UniqueName(t, "work"), integration.UniqueName(t, "audit")
	shared, all := integration.NewCollector(), integration.NewCollector()
	var perMember [2]atomic.Int64
	for i, c := range []*natsadapter.Client{a, b} {
		sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
			perMember[i].Add(1)
			shared.Add(m)
			return nil
		}, messaging.Group(work))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	sub, err := b.Subscribe(t.Context(), topic, all.Handler(), messaging.Group(audit))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs := make([]*messaging.Message, 200)
	ids := make([]string, len(msgs))
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: fmt.Sprintf("c-%d", i)}
		ids[i] = msgs[i].ID
	}
	if err := a.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	shared.WaitDistinct(t, len(msgs), 10*time.Second)
	all.WaitDistinct(t, len(msgs), 10*time.Second)
	if dups := shared.Report(t, ids); dups != 0 {
		t.Errorf("%d messages handled by more than one member of a queue group", dups)
	}
	all.Report(t, ids)
	if perMember[0].Load() == 0 || perMember[1].Load() == 0 {
		t.Errorf("queue group did not share: %d / %d", perMember[0].Load(), perMember[1].Load())
	}
	if _, err := a.Read(t.Context(), topic, messaging.Earliest, all.Handler()); !errors.Is(err, messaging.ErrUnsupported) {
		t.Errorf("Read in core mode: %v, want ErrUnsupported", err)
	}
}

// TestCorePublishSendsOnlyWhatWasSet: in core mode Publish sets no ID nor
// Time, a bare message reaches a raw subscriber as nats.go's Publish sends
// it (no header block), and one with ID and Time carries them; the
// adapter's consumer gives the bare one a unique ID and the receive time.
func TestCorePublishSendsOnlyWhatWasSet(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	if c.Capabilities().PublishAssignsID {
		t.Fatal("core mode claims PublishAssignsID")
	}
	topic := integration.UniqueName(t, "core-bare")
	raw := make(chan *natsgo.Msg, 4)
	rs, err := c.Conn().ChanSubscribe(topic, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Unsubscribe() })
	got := make(chan *messaging.Message, 4)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	at := time.Unix(1700000000, 123)
	bare1, bare2 := messaging.NewMessage([]byte("bare-1")), messaging.NewMessage([]byte("bare-2"))
	set := &messaging.Message{ID: "mine", Time: at, Payload: []byte("set")}
	before := time.Now()
	if err := c.Publish(t.Context(), topic, bare1, bare2, set); err != nil {
		t.Fatal(err)
	}
	if bare1.ID != "" || !bare1.Time.IsZero() {
		t.Errorf("core Publish set ID %q, Time %v on a bare message", bare1.ID, bare1.Time)
	}
	for range 3 {
		select {
		case nm := <-raw:
			switch string(nm.Data) {
			case "set":
				if nm.Header.Get(natsadapter.HeaderMsgID) != "mine" || nm.Header.Get(natsadapter.HeaderTime) != strconv.FormatInt(at.UnixNano(), 10) {
					t.Errorf("message with ID and Time arrived with headers %v", nm.Header)
				}
			default:
				if len(nm.Header) != 0 {
					t.Errorf("bare message %q arrived with headers %v", nm.Data, nm.Header)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("raw subscriber: messages missing")
		}
	}
	ids := map[string]bool{}
	for range 3 {
		var m *messaging.Message
		select {
		case m = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("adapter subscriber: messages missing")
		}
		if string(m.Payload) == "set" {
			if m.ID != "mine" || !m.Time.Equal(at) {
				t.Errorf("set message delivered with ID %q, Time %v; want mine, %v", m.ID, m.Time, at)
			}
			continue
		}
		if m.ID == "" || ids[m.ID] || m.ID == "mine" {
			t.Errorf("bare message %q delivered with ID %q (seen: %v)", m.Payload, m.ID, ids)
		}
		ids[m.ID] = true
		if m.Time.Before(before) || m.Time.After(time.Now()) {
			t.Errorf("bare message %q delivered with Time %v, want its receive time (after %v)", m.Payload, m.Time, before)
		}
	}
}

// TestCoreSlowHandlerWithinPrefetch: in core mode a subscription holds at
// most Prefetch messages ahead of its handler; what arrives while it is
// full waits in nats.go's pending buffer, so a handler that is held up
// loses nothing (core NATS drops only past the slow-consumer limits) and
// handles every message once, in order.
func TestCoreSlowHandlerWithinPrefetch(t *testing.T) {
	const n, prefetch = 300, 4
	c := natstest.Open(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "coreslow")
	release := make(chan struct{})
	var handled atomic.Int64
	var order []string
	got := make(chan struct{})
	sub, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, m *messaging.Message) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		order = append(order, m.ID) // Concurrency 1: one handler at a time
		if handled.Add(1) == n {
			close(got)
		}
		return nil
	}, messaging.Prefetch(prefetch), messaging.Concurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs := make([]*messaging.Message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("s-%03d", i)
		msgs[i] = &messaging.Message{ID: ids[i], Payload: []byte("x")}
	}
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	// Every message is on the subscribing connection (one client: the
	// flush of Publish returns after the server delivered them in order);
	// the handler is still held, so all but Prefetch+1 of them wait.
	close(release)
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d", handled.Load(), n)
	}
	for i, id := range order {
		if id != ids[i] {
			t.Fatalf("message %d handled was %s, want %s (order lost)", i, id, ids[i])
		}
	}
}
