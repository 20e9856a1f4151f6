package rabbitmqtest_test

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestStreamReadColdReconnect: a Read whose connection drops before its
// first message resumes from the position it was opened with, not from the
// stream's end at the reconnect: the messages published while it was
// disconnected are read (they were lost), and at Latest or AtTime(now) a
// message published before is not.
func TestStreamReadColdReconnect(t *testing.T) {
	for _, c := range []struct {
		name string
		from func() messaging.Position
	}{
		{"latest", func() messaging.Position { return messaging.Latest }},
		{"earliest", func() messaging.Position { return messaging.Earliest }},
		{"at-time", func() messaging.Position { return messaging.AtTime(time.Now()) }},
	} {
		t.Run(c.name, func(t *testing.T) { streamReadColdReconnect(t, c.from) })
	}
}

func streamReadColdReconnect(t *testing.T, position func() messaging.Position) {
	ctx := t.Context()
	ep := rabbitmqtest.Broker.Endpoint(t)
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, ep, rabbitmq.WithStreams(true))
	p := fault.NewProxy(t, u.Host)
	u.Host = p.Addr()
	q := u.Query()
	q.Set("reconnect_min", "50ms")
	q.Set("reconnect_max", "200ms")
	u.RawQuery = q.Encode()
	reader := rabbitmqtest.Open(t, u.String(), rabbitmq.WithStreams(true))

	topic := integration.UniqueName(t, "reopen")
	if err := direct.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.DeleteTopic(context.Background(), topic) })
	publish := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := direct.Publish(ctx, topic, &messaging.Message{ID: id, Payload: []byte(id)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if position() != messaging.Earliest {
		publish("before") // published before Read (or its time): not read
	}
	from := position()
	got := make(chan string, 16)
	sub, err := reader.Read(ctx, topic, from, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	p.Cut()
	publish("m1", "m2", "m3")
	p.Restore()
	publish("m4")

	want := []string{"m1", "m2", "m3", "m4"}
	var ids []string
	for !slices.Contains(ids, "m4") {
		select {
		case id := <-got:
			ids = append(ids, id)
		case <-sub.Done():
			t.Fatalf("read ended: %v (read %v)", sub.Err(), ids)
		case <-time.After(30 * time.Second):
			t.Fatalf("m4 not read after 30s; read %v", ids)
		}
	}
	if !slices.Equal(ids, want) {
		t.Errorf("read %v, want %v", ids, want)
	}
}
