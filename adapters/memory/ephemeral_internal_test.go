package memory

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestEphemeralGroupApartFromUserGroups: a user group named like the
// private group of the next group-less subscription once was
// ("_ephemeral.N", a valid name) stays the user's: the subscription starts
// at its own StartAt, does not consume the user group's messages, and its
// end leaves that group as it was. Before, the subscription joined the
// provisioned group: it got the message published before it subscribed
// (ignoring StartAt Latest) and moved the group's cursor.
func TestEphemeralGroupApartFromUserGroups(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	const topic = "ephemeral-apart"
	// The tests of this package do not run in parallel: the next
	// group-less subscription gets this number.
	next := ephemeralSeq.Load() + 1
	if name := ephemeralGroupName(next); messaging.ValidateName(name) == nil {
		t.Errorf("the private group's name %q is a valid group name: a user group can have it", name)
	}
	user := fmt.Sprintf("_ephemeral.%d", next)
	if err := messaging.ValidateName(user); err != nil {
		t.Fatalf("ValidateName(%q): %v, want a valid group name", user, err)
	}
	if err := c.Provision(ctx, topic, user); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		got <- m.ID
		return nil
	}, messaging.StartAt(messaging.Latest))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "after" {
			t.Errorf("the group-less subscription (StartAt Latest) got %q first, want \"after\": it joined the user group %q", id, user)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the group-less subscription got nothing")
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Inspect(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != user {
		t.Fatalf("groups %+v, want the user group %q only", st.Groups, user)
	}
	backlog, _ := st.Groups[0].Backlog.Value()
	inFlight, _ := st.Groups[0].InFlight.Value()
	if backlog != 2 || inFlight != 0 {
		t.Errorf("user group %q: backlog %d, in flight %d, want 2 and 0: the group-less subscription consumed from it", user, backlog, inFlight)
	}
}

// TestEphemeralGroupDroppedAtEnd: the private group of a group-less
// subscription is dropped when the subscription ends (its cursor and
// pending list are not kept for ever), and a group the user named stays.
func TestEphemeralGroupDroppedAtEnd(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	const topic = "ephemeral-dropped"
	noop := func(context.Context, *messaging.Message) error { return nil }
	named, err := c.Subscribe(ctx, topic, noop, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	groupless, err := c.Subscribe(ctx, topic, noop)
	if err != nil {
		t.Fatal(err)
	}
	groups := func() []string {
		tp := c.b.topic(topic)
		tp.mu.Lock()
		defer tp.mu.Unlock()
		var names []string
		for n := range tp.groups {
			names = append(names, n)
		}
		slices.Sort(names)
		return names
	}
	if got := groups(); len(got) != 2 {
		t.Fatalf("groups with a named and a group-less subscription: %v, want two", got)
	}
	if err := groupless.Close(); err != nil {
		t.Fatal(err)
	}
	if err := named.Close(); err != nil {
		t.Fatal(err)
	}
	if got := groups(); !slices.Equal(got, []string{"g"}) {
		t.Errorf("groups after both subscriptions ended: %v, want [g] (the private group dropped)", got)
	}
}
