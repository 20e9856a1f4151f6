package rabbitmqtest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// retryOnce subscribes to topic in group on c with a handler that asks
// for a delayed retry (RetryAfter(delay)) at the first delivery and takes
// the next, publishes a message, and returns when the handler failed it
// and a channel that gets the time of the redelivery.
func retryOnce(t *testing.T, topic, group string, delay time.Duration) (failedAt time.Time, redelivered <-chan time.Time) {
	t.Helper()
	c := rabbitmqtest.Open(t, rabbitmqtest.Broker.Endpoint(t))
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, c, topic)
	failed := make(chan time.Time, 1)
	again := make(chan time.Time, 16)
	var calls atomic.Int32
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error {
		if calls.Add(1) == 1 {
			failed <- time.Now()
			return messaging.RetryAfter(errors.New("later"), delay)
		}
		again <- time.Now()
		return nil
	}, messaging.Group(group), messaging.Concurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("retry")}); err != nil {
		t.Fatal(err)
	}
	select {
	case failedAt = <-failed:
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not delivered")
	}
	return failedAt, again
}

// TestRetryAfterDelayRoundedUp: a delay that is not a multiple of the
// retry queues' 100ms step is rounded up, never down: the message comes
// back no sooner than the delay asked for. Rounded down, RetryAfter(190ms)
// took the 100ms queue and the message came back about 100ms early.
func TestRetryAfterDelayRoundedUp(t *testing.T) {
	const delay = 190 * time.Millisecond
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	failedAt, redelivered := retryOnce(t, topic, group, delay)
	select {
	case at := <-redelivered:
		// failedAt is taken before the handler returns, at is after the
		// redelivery arrived: their difference can only exceed the delay
		// the broker held the message for.
		if waited := at.Sub(failedAt); waited < delay {
			t.Errorf("redelivered %v after RetryAfter(%v), want no sooner than the delay", waited, delay)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("not redelivered within 30s of RetryAfter(%v)", delay)
	}
}

// TestRetryAfterRequeuesWhenDetourFails: when the copy of a delayed retry
// cannot be sent through the retry queue (here the broker refuses to
// declare it: a queue of that name exists with other arguments), the
// message is requeued at once, not left unacknowledged on the live
// channel, where nobody would get it before the subscription stopped.
func TestRetryAfterRequeuesWhenDetourFails(t *testing.T) {
	const delay = time.Second
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	// The retry queue for delay (see the package documentation), taken
	// beforehand with another TTL, so that the client's declaration fails.
	retryQueue := topic + "~" + group + "~~retry-1000ms"
	raw, err := amqp.Dial(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(retryQueue, true, false, false, false, amqp.Table{"x-message-ttl": int64(5)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(retryQueue, false, false, false) })

	failedAt, redelivered := retryOnce(t, topic, group, delay)
	select {
	case at := <-redelivered:
		t.Logf("redelivered %v after the failed RetryAfter(%v)", at.Sub(failedAt).Round(time.Millisecond), delay)
	case <-time.After(20 * time.Second):
		t.Fatalf("a RetryAfter(%v) whose retry queue could not be declared was not redelivered within 20s", delay)
	}
}

// TestDeleteTopicDeletesRetryQueues: DeleteTopic, by any client, deletes
// the retry queue a delayed retry created for the topic's group, with the
// message waiting in it, rather than leaving it to dead-letter into the
// deleted group's queue after its delay.
func TestDeleteTopicDeletesRetryQueues(t *testing.T) {
	const delay = time.Minute
	url := rabbitmqtest.Broker.Endpoint(t)
	topic, group := integration.UniqueName(t, "retry"), integration.UniqueName(t, "g")
	retryQueue := topic + "~" + group + "~~retry-60000ms"
	_, ch := rawChannel(t, url)
	t.Cleanup(func() { _, _ = ch.QueueDelete(retryQueue, false, false, false) }) // if DeleteTopic did not
	retryOnce(t, topic, group, delay)
	for deadline := time.Now().Add(30 * time.Second); ; {
		q, err := ch.QueueDeclarePassive(retryQueue, true, false, false, false, nil)
		if err == nil && q.Messages == 1 {
			break
		}
		if err != nil {
			// A failed passive declare closes the channel.
			if ch, err = rawConn(t, url).Channel(); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retry queue %s does not hold the delayed message after 30s", retryQueue)
		}
		time.Sleep(20 * time.Millisecond) // polling the broker's count
	}
	if err := rabbitmqtest.Open(t, url).DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive(retryQueue, true, false, false, false, nil); err == nil {
		t.Errorf("the retry queue %s exists after DeleteTopic", retryQueue)
	}
}
