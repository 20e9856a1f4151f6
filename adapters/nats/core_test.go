package nats_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/integration"
)

// TestCoreQueueGroups: in core mode members of a group (a queue group)
// share the messages, each handled once, and another group gets them all.
func TestCoreQueueGroups(t *testing.T) {
	a := integration.OpenNATS(t, natsadapter.WithMode(natsadapter.ModeCore))
	b := integration.OpenNATS(t, natsadapter.WithMode(natsadapter.ModeCore))
	topic := integration.UniqueName(t, "core")
	work, audit := integration.UniqueName(t, "work"), integration.UniqueName(t, "audit")
	shared, all := integration.NewCollector(), integration.NewCollector()
	var perMember [2]atomic.Int64
	for i, c := range []*natsadapter.Client{a, b} {
		sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
			perMember[i].Add(1)
			shared.Add(m)
			return nil
		}, messaging.Group(work))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	sub, err := b.Subscribe(t.Context(), topic, all.Handler(), messaging.Group(audit))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs := make([]*messaging.Message, 200)
	ids := make([]string, len(msgs))
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: fmt.Sprintf("c-%d", i)}
		ids[i] = msgs[i].ID
	}
	if err := a.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	shared.WaitDistinct(t, len(msgs), 10*time.Second)
	all.WaitDistinct(t, len(msgs), 10*time.Second)
	if dups := shared.Report(t, ids); dups != 0 {
		t.Errorf("%d messages handled by more than one member of a queue group", dups)
	}
	all.Report(t, ids)
	if perMember[0].Load() == 0 || perMember[1].Load() == 0 {
		t.Errorf("queue group did not share: %d / %d", perMember[0].Load(), perMember[1].Load())
	}
	if _, err := a.Read(t.Context(), topic, messaging.Earliest, all.Handler()); !errors.Is(err, messaging.ErrUnsupported) {
		t.Errorf("Read in core mode: %v, want ErrUnsupported", err)
	}
}
