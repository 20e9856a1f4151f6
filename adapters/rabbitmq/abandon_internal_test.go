package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
)

// TestAbandonedChannelReturnsRead: a publish channel given up by its call
// (its ctx ended, or the broker was silent or blocked, while it waited for
// confirms) is given back unread while the broker still returns the
// unroutable messages written on it. Those returns must still be taken:
// amqp091-go hands them to the channel's return listener from the
// connection's reader, which waits up to 5s for each one the full buffer
// cannot take, stalling every call on the connection. They used to be left
// unread. The test plays sendOn: it writes more unroutable messages than
// the buffer holds on a channel of the pool and gives the channel back
// abandoned, reading neither their returns nor their confirms.
func TestAbandonedChannelReturnsRead(t *testing.T) {
	url := os.Getenv("MESSAGING_AMQP_URL")
	if url == "" {
		if os.Getenv("MESSAGING_REQUIRE_BROKERS") == "1" {
			t.Fatal("MESSAGING_AMQP_URL is not set; MESSAGING_REQUIRE_BROKERS=1 forbids skipping")
		}
		t.Skip("MESSAGING_AMQP_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	topic := fmt.Sprintf("abandoned-returns-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_ = c.DeleteTopic(context.Background(), topic)
		_ = c.Close()
	})
	pc, err := c.pool.get(ctx, time.Now(), time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ensureTopicOn(ctx, pc, time.Now(), topic); err != nil {
		t.Fatal(err)
	}
	for i := range cap(pc.returns) + 3 { // no queue is bound: each is returned
		if _, err := pc.ch.PublishWithDeferredConfirm(topic, "k", true, false, amqp.Publishing{MessageId: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.pool.put(pc, false)
	// The connection goes on answering: a publish on it has its answer
	// well within amqp091-go's 5s wait for a return listener.
	pctx, pcancel := context.WithTimeout(ctx, 4*time.Second)
	defer pcancel()
	err = c.Publish(pctx, topic, messaging.NewMessage([]byte("after")))
	if !errors.Is(err, ErrUnroutable) {
		t.Errorf("Publish after the abandoned channel = %v, want ErrUnroutable (answered): the connection stalled", err)
	}
}
