package rabbitmqtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
)

// TestPublishUnderResourceAlarm: while a memory alarm on a private node
// blocks publishing (connection.blocked; confirms never come), Publish
// without a deadline fails with messaging.ErrUnavailable after
// unavailable_timeout (1s here), and Close returns with every pending
// PublishAsync message given exactly one result, an error. Once the alarm
// clears, a new client publishes.
func TestPublishUnderResourceAlarm(t *testing.T) {
	n := rabbitmqtest.StartNode(t)
	const bound = 5 * time.Second // unavailable_timeout is 1s
	c := rabbitmqtest.Open(t, n.URL()+"?unavailable_timeout=1s")
	topic, group := integration.UniqueName(t, "alarm"), integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("before")}); err != nil {
		t.Fatalf("Publish before the alarm: %v", err)
	}

	setWatermark(t, n, "absolute", "1")
	// Runs before the client's Close (cleanups run last first): a client
	// stuck on the alarm then gets its confirms and the test ends.
	t.Cleanup(func() { setWatermark(t, n, "0.4") })
	awaitBlocked(t, n)

	// (a) The first message sent under the alarm blocks the connection
	// (the broker may still take it); the second is not read.
	for _, batch := range []int{2, 1} {
		msgs := make([]*messaging.Message, batch)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: []byte(fmt.Sprint("under alarm ", i))}
		}
		start := time.Now()
		res := make(chan error, 1)
		go func() { res <- c.Publish(context.Background(), topic, msgs...) }()
		select {
		case err := <-res:
			if !errors.Is(err, messaging.ErrUnavailable) {
				t.Fatalf("Publish of %d under the alarm: %v, want ErrUnavailable", batch, err)
			}
			t.Logf("Publish of %d under the alarm failed after %v: %v", batch, time.Since(start).Round(time.Millisecond), err)
		case <-time.After(bound):
			t.Fatalf("Publish of %d under the alarm has not returned after %v", batch, bound)
		}
	}

	// A ctx that ends before unavailable_timeout: the error says the broker
	// is unavailable (blocked) too, not only that ctx ended.
	short, cancelShort := context.WithTimeout(t.Context(), 200*time.Millisecond)
	err := c.Publish(short, topic, &messaging.Message{Payload: []byte("short ctx")})
	cancelShort()
	if !errors.Is(err, messaging.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with a short ctx under the alarm: %v, want ErrUnavailable and DeadlineExceeded", err)
	}

	// (b) PublishAsync, then Close.
	const N = 50
	var mu sync.Mutex
	results := map[*messaging.Message][]error{}
	for i := range N {
		m := &messaging.Message{Payload: []byte(fmt.Sprint("async ", i))}
		c.PublishAsync(context.Background(), topic, m, func(m *messaging.Message, err error) {
			mu.Lock()
			results[m] = append(results[m], err)
			mu.Unlock()
		})
	}
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
		t.Logf("Close under the alarm returned after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("Close under the alarm has not returned after %v", bound)
	}
	mu.Lock()
	kinds := map[string]int{}
	for _, errs := range results {
		kinds[fmt.Sprint(errs)]++
	}
	t.Logf("results: %v", kinds)
	if len(results) != N {
		t.Errorf("%d of %d PublishAsync messages have a result", len(results), N)
	}
	for m, errs := range results {
		if len(errs) != 1 || errs[0] == nil {
			t.Errorf("message %q: results %v, want one error", m.Payload, errs)
		} else if !errors.Is(errs[0], messaging.ErrUnavailable) && !errors.Is(errs[0], messaging.ErrClosed) {
			t.Errorf("message %q: %v, want ErrUnavailable or ErrClosed", m.Payload, errs[0])
		}
	}
	mu.Unlock()

	setWatermark(t, n, "0.4")
	c2 := rabbitmqtest.Open(t, n.URL()+"?unavailable_timeout=1s")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c2.Publish(ctx, topic, &messaging.Message{Payload: []byte("after")}); err != nil {
		t.Fatalf("Publish after the alarm cleared: %v", err)
	}
}

// setWatermark runs rabbitmqctl set_vm_memory_high_watermark on n.
func setWatermark(t *testing.T, n *rabbitmqtest.Node, args ...string) {
	t.Helper()
	if out, err := n.Ctl(30*time.Second, append([]string{"set_vm_memory_high_watermark"}, args...)...); err != nil {
		t.Fatalf("set_vm_memory_high_watermark %v: %v\n%s", args, err, out)
	}
}

// awaitBlocked returns once the memory alarm blocks publishing on n: a
// probe connection publishes (with confirms) until the broker blocks it
// instead of confirming.
func awaitBlocked(t *testing.T, n *rabbitmqtest.Node) {
	t.Helper()
	conn, err := amqp.Dial(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	// Closed by the node's teardown: a blocked connection's close waits
	// for the alarm to clear.
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		dc, err := ch.PublishWithDeferredConfirm("", "alarm-probe", false, false, amqp.Publishing{Body: []byte("probe")})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-dc.Done(): // not blocked yet: publish again
		case b := <-blocked:
			if b.Active {
				t.Logf("alarm in force: connection blocked (%s)", b.Reason)
				return
			}
		case <-deadline:
			t.Fatal("the memory alarm did not block publishing within 30s")
		}
	}
}
