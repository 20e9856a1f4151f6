package kafkatest_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// TestRetryAfterDoesNotHoldRebalance: a message a member holds for its
// RetryAfter delay (the engine redelivers in process; Kafka keeps no
// delays) does not keep the member from the group's next rebalance. At a
// rebalance a member waits, up to half the rebalance timeout (15s), until
// what it handed out is settled; the held message is released when its
// generation ends, so a member that joins gets its share at once, not once
// the held member was evicted (session_timeout, 6s in these tests).
func TestRetryAfterDoesNotHoldRebalance(t *testing.T) {
	pub := kafkatest.Open(t, "partitions=2")
	topic := integration.UniqueName(t, "lease")
	group := integration.UniqueName(t, "g")
	if err := pub.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteTopic(t, pub, topic)
	failed := make(chan struct{})
	var failedOnce atomic.Bool
	a := kafkatest.Open(t)
	subA, err := a.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		if m.ID == "x" && failedOnce.CompareAndSwap(false, true) {
			close(failed)
			return messaging.RetryAfter(errors.New("later"), time.Minute)
		}
		return nil
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = subA.Close() })
	if err := pub.Publish(t.Context(), topic, &messaging.Message{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failed:
	case <-time.After(30 * time.Second):
		t.Fatal("x not handled within 30s")
	}

	gotB := make(chan struct{}, 1)
	b := kafkatest.Open(t)
	joined := time.Now()
	subB, err := b.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		if m.ID != "x" {
			select {
			case gotB <- struct{}{}:
			default:
			}
		}
		return nil
	}, messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = subB.Close() })
	const within = 4 * time.Second
	for n := 0; ; n++ {
		if took := time.Since(joined); took > within {
			t.Fatalf("the joining member got no message %v after joining, want within %v (the rebalance waited for a message held for its RetryAfter)", took, within)
		}
		msgs := make([]*messaging.Message, 10)
		for i := range msgs {
			msgs[i] = &messaging.Message{Key: strconv.Itoa(n*10 + i)}
		}
		if err := pub.Publish(t.Context(), topic, msgs...); err != nil {
			t.Fatal(err)
		}
		select {
		case <-gotB:
		case <-time.After(100 * time.Millisecond): // then publish more
			continue
		}
		break
	}
	t.Logf("the joining member got its first message %v after joining", time.Since(joined))
}

// TestRebalanceWaitsForHandlers: when a member's partition is revoked (a
// second member joins) while its handler holds a message, the member
// waits for the handler before it makes the generation's final commit and
// rejoins: the message is not handed to anyone else meanwhile, and once
// the handler returned it is committed, so no owner delivers it again.
func TestRebalanceWaitsForHandlers(t *testing.T) {
	pub := kafkatest.Open(t)
	topic := integration.UniqueName(t, "drain")
	group := integration.UniqueName(t, "g")
	if err := pub.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteTopic(t, pub, topic)
	var firsts atomic.Int32
	holding, again, gotLast := make(chan struct{}), make(chan struct{}, 1), make(chan struct{}, 1)
	release := make(chan struct{})
	handler := func(ctx context.Context, m *messaging.Message) error {
		switch m.ID {
		case "first":
			if firsts.Add(1) > 1 {
				select {
				case again <- struct{}{}:
				default:
				}
				return nil
			}
			close(holding)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		case "last":
			select {
			case gotLast <- struct{}{}:
			default:
			}
		}
		return nil
	}
	subscribe := func() {
		c := kafkatest.Open(t)
		sub, err := c.Subscribe(t.Context(), topic, handler, messaging.Group(group))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	subscribe() // A
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the subscriptions close
	if err := pub.Publish(t.Context(), topic, &messaging.Message{ID: "first"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-time.After(30 * time.Second):
		t.Fatal("first not delivered within 30s")
	}
	subscribe() // B: the partition is revoked from A while it holds first
	// A rejoins only once first is settled (rebalance_timeout/2 at most,
	// 15s here); a second delivery meanwhile means it did not wait.
	select {
	case <-again:
		t.Fatal("first delivered again while its first delivery was still in its handler (the revoked member did not wait for it)")
	case <-time.After(3 * time.Second):
	}
	once.Do(func() { close(release) })
	if err := pub.Publish(t.Context(), topic, &messaging.Message{ID: "last"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gotLast:
	case <-time.After(30 * time.Second):
		t.Fatal("last not delivered within 30s of the release")
	}
	if n := firsts.Load(); n != 1 {
		t.Fatalf("first delivered %d times, want once (settled before the revoked member's final commit)", n)
	}
}
