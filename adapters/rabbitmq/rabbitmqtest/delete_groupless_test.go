package rabbitmqtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// deletedHeader is the header of the message DeleteTopic sends to a
// topic's queues before deleting it (see the package documentation).
const deletedHeader = "x-msgkit-topic-deleted"

// idsTo is a handler sending the IDs it gets to ch.
func idsTo(ch chan<- string) messaging.Handler {
	return func(ctx context.Context, m *messaging.Message) error {
		select {
		case ch <- m.ID:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// nextID waits for the next ID on ch and checks it is want.
func nextID(t *testing.T, ch <-chan string, what, want string) {
	t.Helper()
	select {
	case id := <-ch:
		if id != want {
			t.Fatalf("%s got %q, want %q", what, id, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s got nothing within 30s, want %q", what, want)
	}
}

// endsTopicDeleted waits for sub to end and checks it ended with
// messaging.ErrTopicDeleted.
func endsTopicDeleted(t *testing.T, what string, sub messaging.Subscription) {
	t.Helper()
	select {
	case <-sub.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after its topic was deleted", what)
	}
	if err := sub.Err(); !errors.Is(err, messaging.ErrTopicDeleted) {
		t.Fatalf("%s ended with %v, want ErrTopicDeleted", what, err)
	}
}

// unconsumed returns queue's state once the broker lists no consumer on
// it: a closed subscription's consumer can stay listed a moment after
// Close, holding what it left unacknowledged, which is not counted ready
// until then.
func unconsumed(t *testing.T, ch *amqp.Channel, queue string) amqp.Queue {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Consumers == 0 {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still has %d consumers after 30s", queue, q.Consumers)
		}
		time.Sleep(20 * time.Millisecond) // polling the broker's count
	}
}

// TestDeleteTopicEndsGrouplessSubscription: a group-less subscription ends
// with messaging.ErrTopicDeleted when another client deletes its topic, and
// a message published after the deletion (to the topic declared again,
// with a new subscriber) never reaches the old subscription's handler. Its
// exclusive queue used to lose its binding with the exchange silently: the
// subscription ran on for ever and stayed deaf, also once a Publish had
// declared the exchange again.
func TestDeleteTopicEndsGrouplessSubscription(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	subscriber, deleter := rabbitmqtest.Open(t, url), rabbitmqtest.Open(t, url)
	topic := integration.UniqueName(t, "delgl")
	deleteAtEnd(t, deleter, topic)
	old := make(chan string, 10)
	sub, err := subscriber.Subscribe(t.Context(), topic, idsTo(old))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := deleter.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	nextID(t, old, "the subscription", "before")
	if err := deleter.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	endsTopicDeleted(t, "group-less subscription", sub)

	fresh := make(chan string, 10)
	sub2, err := subscriber.Subscribe(t.Context(), topic, idsTo(fresh))
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	if err := deleter.Publish(t.Context(), topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	nextID(t, fresh, "a subscription made after the deletion", "after")
	// The old subscription's handler has returned (it ended): what it got
	// is all in old.
	select {
	case id := <-old:
		t.Errorf("the old subscription's handler got %q after the deletion", id)
	default:
	}
}

// TestTopicDeletedMessageOnlyEndsGroupless: the message DeleteTopic sends
// to a topic's queues (forged here, the topic left in place, as if
// DeleteTopic had been cut right after sending it) ends a group-less
// subscription after what came before it, and nothing else: a group's
// subscription and a Read skip it (the stream keeps it) and go on, no
// handler gets it, and the group does not dead-letter it.
func TestTopicDeletedMessageOnlyEndsGroupless(t *testing.T) {
	url := rabbitmqtest.Broker.Endpoint(t)
	dlx := integration.UniqueName(t, "dlx")
	c := rabbitmqtest.Open(t, url, rabbitmq.WithStreams(true), rabbitmq.WithDeadLetterExchange(dlx))
	topic, group := integration.UniqueName(t, "delmsg"), integration.UniqueName(t, "g")
	deleteAtEnd(t, c, topic)

	raw := rawConn(t, url)
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	dlq := dlx + "-q"
	t.Cleanup(func() {
		if ch, err := raw.Channel(); err == nil {
			_, _ = ch.QueueDelete(dlq, false, false, false)
			_ = ch.ExchangeDelete(dlx, false, false)
			_ = ch.Close()
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

	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	grp, eph, rd := make(chan string, 10), make(chan string, 10), make(chan string, 10)
	gsub, err := c.Subscribe(t.Context(), topic, idsTo(grp), messaging.Group(group), messaging.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer gsub.Close()
	esub, err := c.Subscribe(t.Context(), topic, idsTo(eph))
	if err != nil {
		t.Fatal(err)
	}
	defer esub.Close()
	read, err := c.Read(t.Context(), topic, messaging.Earliest, idsTo(rd))
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()

	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	for what, ch := range map[string]chan string{"group": grp, "group-less subscription": eph, "Read": rd} {
		nextID(t, ch, what, "before")
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirm(topic, "", false, false, amqp.Publishing{Headers: amqp.Table{deletedHeader: topic}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("forged message not confirmed: %v", err)
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	nextID(t, grp, "group", "after")
	nextID(t, rd, "Read", "after")
	endsTopicDeleted(t, "group-less subscription", esub)
	select {
	case id := <-eph:
		t.Errorf("the group-less subscription's handler got %q after the message of the deletion", id)
	default:
	}
	for what, s := range map[string]messaging.Subscription{"group": gsub, "Read": read} {
		select {
		case <-s.Done():
			t.Errorf("%s ended: %v", what, s.Err())
		default:
		}
	}
	if err := gsub.Close(); err != nil {
		t.Fatal(err)
	}
	q := unconsumed(t, ch, rabbitmq.GroupQueueName(topic, group))
	if q.Messages != 0 {
		t.Errorf("group queue holds %d messages once its subscription closed, want 0 (the deletion's message acknowledged)", q.Messages)
	}
	if q, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	} else if q.Messages != 0 {
		t.Errorf("%d messages dead-lettered, want none", q.Messages)
	}
}
