package natstest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

// boundTopic creates a stream capturing prefix.> (deleted at cleanup) and
// returns a bind-mode client and the topic prefix.name.
func boundTopic(t *testing.T, name string) (c *natsadapter.Client, topic, stream string) {
	t.Helper()
	c = natstest.Open(t, natsadapter.WithExistingStreams())
	prefix := integration.UniqueName(t, "bound")
	stream = strings.ReplaceAll(prefix, "-", "_")
	if _, err := c.JetStream().CreateStream(t.Context(), jetstreamConfig(stream, prefix+".>")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.JetStream().DeleteStream(context.Background(), stream) })
	return c, prefix + "." + name, stream
}

// endsDeleted waits for sub to end after DeleteTopic and checks it ended
// with ErrTopicDeleted.
func endsDeleted(t *testing.T, what string, sub messaging.Subscription) {
	t.Helper()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after DeleteTopic", what)
	}
	if err := sub.Err(); !errors.Is(err, messaging.ErrTopicDeleted) {
		t.Fatalf("%s ended with %v, want ErrTopicDeleted", what, err)
	}
}

// TestExistingStreamsDeleteTopicEndsIdleGroup: in bind mode a group
// subscription with no pull request waiting when DeleteTopic deletes its
// consumer (its handler holds all its credit; the server has no pull to
// tell, and the next one finds no responder) ends with ErrTopicDeleted; it
// used to take the missing consumer for a transient loss and create it
// again.
func TestExistingStreamsDeleteTopicEndsIdleGroup(t *testing.T) {
	c, topic, stream := boundTopic(t, "idle")
	sub := deleteWhileIdle(t, c, topic, messaging.Group("g"))
	endsDeleted(t, "group subscription", sub)
	if _, err := c.JetStream().Consumer(t.Context(), stream, c.ConsumerName(topic, "g")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("group's consumer after DeleteTopic: %v, want not found (created again)", err)
	}
}

// TestExistingStreamsDeleteTopicEndsIdleGroupless: the same for a
// group-less subscription, whose ephemeral consumer answered its pull and
// no reconnect followed: it cannot have expired.
func TestExistingStreamsDeleteTopicEndsIdleGroupless(t *testing.T) {
	c, topic, _ := boundTopic(t, "idle")
	endsDeleted(t, "group-less subscription", deleteWhileIdle(t, c, topic))
}

// deleteWhileIdle subscribes to topic with opts and a handler that holds
// the first message, with Prefetch 1 (so no pull request waits on the
// server), deletes the topic meanwhile, then lets the handler return.
func deleteWhileIdle(t *testing.T, c *natsadapter.Client, topic string, opts ...messaging.SubscribeOption) messaging.Subscription {
	t.Helper()
	started, release := make(chan struct{}, 1), make(chan struct{})
	sub, err := c.Subscribe(t.Context(), topic, func(ctx context.Context, _ *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, append(opts, messaging.Prefetch(1), messaging.Concurrency(1))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("message not handled within 10s")
	}
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	close(release)
	return sub
}

// TestExistingStreamsDeleteTopicEndsGroupless: in bind mode DeleteTopic
// ends a live group-less subscription with ErrTopicDeleted; its ephemeral
// consumer used to outlive the topic.
func TestExistingStreamsDeleteTopicEndsGroupless(t *testing.T) {
	c, prefix, _, sub := boundSub(t, "groupless")
	topic := prefix + ".groupless"
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	endsDeleted(t, "group-less subscription", sub)
}

// TestExistingStreamsDeleteTopicEndsRead: in bind mode DeleteTopic ends a
// live Read with ErrTopicDeleted; nats.go's ordered consumer, which Read
// used, created its deleted consumer again and read on.
func TestExistingStreamsDeleteTopicEndsRead(t *testing.T) {
	c, topic, _ := boundTopic(t, "read")
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	col := integration.NewCollector()
	sub, err := c.Read(t.Context(), topic, messaging.Earliest, col.Handler())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	col.WaitDistinct(t, 1, 10*time.Second)
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	endsDeleted(t, "Read", sub)
}
