package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestProvisionedGroupStartsAtEarliest: a group Provision creates starts
// at the start of the log (see Client.Provision): it gets what was
// published before it was provisioned, not only what came after.
func TestProvisionedGroupStartsAtEarliest(t *testing.T) {
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	const topic = "provision-earliest"
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Provision(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	}, messaging.Group("g"), messaging.StartAt(messaging.Latest)) // StartAt applies to a new group only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	select {
	case id := <-got:
		if id != "before" {
			t.Errorf("the provisioned group's first message is %q, want \"before\" (published before Provision)", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the provisioned group got nothing")
	}
}
