package outbox_test

import (
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/integration"
)

// TestRelayedTime: a Time that Enqueue fills in (the ID's time, to 256 ns)
// reaches the broker exactly, still equal to the ID's time (adapters then
// send no separate time field); a Time given with nanoseconds reaches it to
// the microsecond, PostgreSQL's resolution. Both come back in the local
// time zone.
func TestRelayedTime(t *testing.T) {
	e := newEnv(t)
	c := openMemory(t)
	col := integration.NewCollector()
	subscribe(t, c, "times", col.Handler())
	e.startRelay(t, c)
	// Several messages with a default Time: one whose ID's time happens to
	// fall on a whole microsecond (1 in 125) does not hide the others.
	var defaults []*messaging.Message
	for range 10 {
		defaults = append(defaults, &messaging.Message{})
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+1", 3600))
	given := &messaging.Message{Time: at}
	e.enqueue(t, "times", true, append(defaults, given)...)
	if given.Time != at {
		t.Fatalf("Enqueue changed the given Time to %v", given.Time)
	}
	col.WaitDistinct(t, len(defaults)+1, 10*time.Second)
	got := map[string]*messaging.Message{}
	for _, m := range col.Messages() {
		got[m.ID] = m
	}
	for _, m := range defaults {
		g := got[m.ID]
		if g == nil {
			t.Fatalf("message %s not delivered", m.ID)
		}
		if !g.Time.Equal(m.Time) {
			t.Errorf("default Time: relayed %v, enqueued %v", g.Time.Format(time.RFC3339Nano), m.Time.Format(time.RFC3339Nano))
		}
		if idt, ok := driver.IDTime(g.ID); !ok || !idt.Equal(g.Time) {
			t.Errorf("default Time: relayed %v, the ID's time %v", g.Time.Format(time.RFC3339Nano), idt.Format(time.RFC3339Nano))
		}
		if g.Time.Location() != time.Local {
			t.Errorf("default Time: relayed in zone %v, want the local zone", g.Time.Location())
		}
	}
	g := got[given.ID]
	if g == nil {
		t.Fatalf("message %s not delivered", given.ID)
	}
	if want := at.Truncate(time.Microsecond); !g.Time.Equal(want) {
		t.Errorf("given Time: relayed %v, want %v", g.Time.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if g.Time.Location() != time.Local {
		t.Errorf("given Time: relayed in zone %v, want the local zone", g.Time.Location())
	}
}
