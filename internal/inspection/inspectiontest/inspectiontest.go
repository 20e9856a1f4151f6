// Package inspectiontest sets up a known backlog on a broker for the tests
// of what reads it (the exporters, msgctl).
package inspectiontest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// Held is the state HeldBacklog leaves: the broker reports, for the topic,
// Published messages and, for group "work", Backlog undelivered, InFlight
// held in handlers and one consumer; group "idle" (provisioned, never
// consumed) has all Published as backlog.
const (
	Published = 5
	Backlog   = 2
	InFlight  = 2
)

// HeldBacklog publishes Published messages to topic (provisioned with the
// groups "idle" and "work" first), subscribes to it in group "work" with
// two handlers that hold what they get, lets one of them acknowledge one
// message, and waits until the broker reports that state (settlements reach
// it asynchronously). It returns the sum of the messages' Size. The
// handlers are released and the subscription closed when the test ends.
func HeldBacklog(t testing.TB, c messaging.Client, topic string) (bytes int64) {
	t.Helper()
	insp, ok := c.(messaging.Inspector)
	if !ok {
		t.Fatalf("%T is no messaging.Inspector", c)
	}
	ctx := context.Background()
	if err := messaging.Provision(ctx, c, topic, "idle", "work"); err != nil {
		t.Fatal(err)
	}
	for i := range Published {
		m := messaging.NewMessage(fmt.Appendf(nil, "message %d", i))
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Fatal(err)
		}
		bytes += int64(m.Size())
	}
	entered := make(chan struct{}, Published)
	release := make(chan struct{})
	sub, err := c.Subscribe(ctx, topic, func(ctx context.Context, m *messaging.Message) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, messaging.Group("work"), messaging.Concurrency(2), messaging.Prefetch(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	t.Cleanup(func() { close(release) }) // first: the held handlers return
	for range 2 {
		<-entered
	}
	release <- struct{}{} // one acknowledged; the subscription takes another
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := insp.Inspect(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range st.Groups {
			backlog, _ := g.Backlog.Value()
			inFlight, _ := g.InFlight.Value()
			if g.Group == "work" && backlog == Backlog && inFlight == InFlight {
				return bytes
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker never reported group work with backlog %d and %d in flight: %+v", Backlog, InFlight, st)
		}
		time.Sleep(5 * time.Millisecond) // polling the broker's state
	}
}
