package rabbitmqtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestPublishResendsAfterCutBeforeConfirm: messages the broker stored but
// whose confirms the connection's loss swallowed are sent again on the
// next connection, and Publish returns nil once they are confirmed there
// (duplicates, no loss), rather than failing them as lost. The link has
// latency, so that the cut comes after the broker has all the messages
// (seen on a direct connection) and before their confirms reach the
// client.
func TestPublishResendsAfterCutBeforeConfirm(t *testing.T) {
	const total = 20
	p, viaProxy, direct := proxied(t, "")
	c := rabbitmqtest.Open(t, viaProxy, rabbitmq.WithUnavailableTimeout(30*time.Second))
	topic, group := integration.UniqueName(t, "resend"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, rabbitmqtest.Open(t, direct), topic)
	_, ch := rawChannel(t, direct)

	p.SetLatency(time.Second)
	msgs := make([]*messaging.Message, total)
	for i := range msgs {
		msgs[i] = messaging.NewMessage([]byte("m"))
	}
	published := make(chan error, 1)
	go func() { published <- c.Publish(context.Background(), topic, msgs...) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(rabbitmq.GroupQueueName(topic, group), true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages >= total {
			break
		}
		select {
		case err := <-published:
			t.Fatalf("Publish returned (%v) before the test could cut its confirms", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker holds %d of the %d messages after 30s", q.Messages, total)
		}
		time.Sleep(10 * time.Millisecond) // polling the broker's count
	}
	p.Cut() // the confirms, held by the latency, are lost with the link
	p.SetLatency(0)
	p.Restore()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("Publish across a cut before the confirms: %v, want nil (resent on the next connection)", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Publish has not returned 60s after the cut")
	}
}

// TestReconnectRedeclaresProvisioned: the topology a client provisioned is
// declared again on its next connection before that connection is used:
// a group queue deleted while the client was cut off exists again when the
// client publishes after the reconnect, and the message is routed to it
// rather than failing with ErrUnroutable.
func TestReconnectRedeclaresProvisioned(t *testing.T) {
	p, viaProxy, direct := proxied(t, "")
	c := rabbitmqtest.Open(t, viaProxy)
	topic, group := integration.UniqueName(t, "redeclare"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, rabbitmqtest.Open(t, direct), topic)
	_, ch := rawChannel(t, direct)
	queue := rabbitmq.GroupQueueName(topic, group)

	p.Cut()
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	p.Restore()
	// Publish waits for the reconnect.
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "m"}); err != nil {
		t.Fatalf("publish after the reconnect: %v, want nil (the provisioned group declared again)", err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("the group queue after the reconnect: %v", err)
	}
	if q.Messages != 1 {
		t.Errorf("the group queue holds %d messages, want the one published", q.Messages)
	}
}
