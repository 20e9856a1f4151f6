package rabbitmqtest_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestDeleteTopicCutThenAgain: DeleteTopic is cut after it has read the
// topic's queues from its registry and deleted the first of them (the link
// slowed, then cut until the call failed with messaging.ErrUnavailable);
// once the broker is back, DeleteTopic again deletes every queue left. The
// registry's entries used to be taken from it as they were read, so the
// second call no longer knew the group queues the first had not reached:
// they stayed on the broker.
func TestDeleteTopicCutThenAgain(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct := rabbitmqtest.Open(t, u.String())
	raw := rawConn(t, u.String())
	topic := integration.UniqueName(t, "delcut")
	var groups []string
	for range 8 {
		groups = append(groups, integration.UniqueName(t, "g"))
	}
	if err := direct.Provision(t.Context(), topic, groups...); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)
	queue := func(g string) string { return topic + "~" + g }
	t.Cleanup(func() { // what a failing run leaves, DeleteTopic may not know
		ch, err := raw.Channel()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer func() { _ = ch.Close() }()
		for _, g := range groups {
			if _, err := ch.QueueDelete(queue(g), false, false, false); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})

	p := fault.NewProxy(t, u.Host)
	pu := *u
	pu.Host = p.Addr()
	c := rabbitmqtest.Open(t, pu.String()+"?unavailable_timeout=1s&reconnect_min=10ms&reconnect_max=50ms")
	p.SetDelay(midCallDelay)
	res := make(chan error, 1)
	go func() { res <- c.DeleteTopic(context.Background(), topic) }()
	// Cut as soon as a group queue is gone: the registry has been read.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for gone := false; !gone; {
		for _, g := range groups {
			gone = gone || !queueExists(t, raw, queue(g))
		}
		select {
		case err := <-res:
			t.Fatalf("DeleteTopic returned before any group queue was seen gone: %v; slow the link more", err)
		case <-ctx.Done():
			t.Fatal("no group queue deleted within 30s")
		default:
		}
	}
	p.Cut()
	select {
	case err := <-res:
		if !errors.Is(err, messaging.ErrUnavailable) {
			t.Fatalf("DeleteTopic cut mid-call: %v, want messaging.ErrUnavailable", err)
		}
	case <-time.After(fault.AdminGiveUp):
		t.Fatalf("DeleteTopic had not returned %v after the cut", fault.AdminGiveUp)
	}
	var left []string
	for _, g := range groups {
		if queueExists(t, raw, queue(g)) {
			left = append(left, g)
		}
	}
	if len(left) == 0 {
		t.Fatal("every group queue was deleted before the cut: the test proves nothing; slow the link more")
	}
	t.Logf("%d of %d group queues left by the cut call", len(left), len(groups))
	p.SetDelay(0)
	p.Restore()
	if err := c.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("DeleteTopic again: %v", err)
	}
	for _, g := range left {
		if queueExists(t, raw, queue(g)) {
			t.Errorf("group queue %s still exists after DeleteTopic again", queue(g))
		}
	}
}
