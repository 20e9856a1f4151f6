package prepare

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/messaging"
)

func TestNewIDIsUniqueTimeOrderedUUID(t *testing.T) {
	seen := make(map[string]bool)
	before := time.Now()
	prev := ""
	var prevTime time.Time
	const n = 10000 // several refills of the random buffer
	for i := range n {
		id := NewID()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("NewID() = %q: not a version 7 UUID (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("NewID() = %q after %q: not increasing", id, prev)
		}
		at, ok := IDTime(id)
		if !ok || at.Before(prevTime) {
			t.Fatalf("IDTime(%q) = %v, %v: want a time not before the previous ID's %v", id, at, ok, prevTime)
		}
		// google/uuid bumps the sub-millisecond part by 256 ns per ID
		// when IDs come faster than that, so the i-th ID of a fast run
		// (this one, or an earlier test's in the same process) may run
		// ahead of the clock by up to (i+1)*256 ns, never behind it.
		ahead := time.Duration(i+1)*256*time.Nanosecond + time.Millisecond
		if at.Before(before.Truncate(time.Millisecond)) || at.After(time.Now().Add(ahead)) {
			t.Fatalf("IDTime(%q) = %v, want about now (%v)", id, at, before)
		}
		prev, prevTime = id, at
	}
}

func TestIDTimeRejectsOtherIDs(t *testing.T) {
	for _, id := range []string{"", "order-1", uuid.NewString(), "0190a6f2-7c3e-7abc-8def-0123456789a"} {
		if at, ok := IDTime(id); ok {
			t.Errorf("IDTime(%q) = %v, true; want false", id, at)
		}
	}
	// A version 7 UUID made elsewhere: 2024-07-01T00:00:00.000Z plus
	// 0x123 << 8 ns.
	if at, ok := IDTime("01906b97-5c00-7123-8000-000000000000"); !ok || !at.Equal(time.UnixMilli(1719792000000).Add(0x123<<8)) {
		t.Errorf("IDTime of a foreign v7 UUID = %v, %v; want 2024-07-01 00:00:00.000074496 UTC", at, ok)
	}
	// The largest 48-bit millisecond count (year 10889): in nanoseconds it
	// would overflow int64.
	if at, ok := IDTime("ffffffff-ffff-7000-8000-000000000000"); !ok || !at.Equal(time.UnixMilli(1<<48-1)) {
		t.Errorf("IDTime of the last v7 millisecond = %v, %v; want %v", at, ok, time.UnixMilli(1<<48-1))
	}
}

func TestPublishFillsIDAndTime(t *testing.T) {
	set := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	fresh, withID, withTime := &messaging.Message{}, &messaging.Message{ID: "mine"}, &messaging.Message{Time: set}
	if err := Publish("t", []*messaging.Message{fresh, withID, withTime}, 0); err != nil {
		t.Fatal(err)
	}
	if at, ok := IDTime(fresh.ID); !ok || !at.Equal(fresh.Time) {
		t.Errorf("message with neither: ID %q, Time %v; want a v7 ID carrying Time", fresh.ID, fresh.Time)
	}
	if withID.ID != "mine" || withID.Time.IsZero() {
		t.Errorf("message with an ID: %q %v; want the ID kept and the time set", withID.ID, withID.Time)
	}
	if _, ok := IDTime(withTime.ID); !ok || !withTime.Time.Equal(set) {
		t.Errorf("message with a time: %q %v; want a new ID and the time kept", withTime.ID, withTime.Time)
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = NewID()
		}
	})
}

func TestCheckValidatesWithoutFillingIn(t *testing.T) {
	m := &messaging.Message{Payload: []byte("x")}
	if err := Check("t", []*messaging.Message{m}, 0); err != nil {
		t.Fatal(err)
	}
	if m.ID != "" || !m.Time.IsZero() {
		t.Fatalf("Check set ID %q, Time %v", m.ID, m.Time)
	}
	if err := Check("t", []*messaging.Message{{Payload: make([]byte, 11)}}, 10); !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Errorf("11 bytes with limit 10: %v, want ErrMessageTooLarge", err)
	}
	if err := Check("t", []*messaging.Message{{Header: messaging.Header{"msgkit-x": "1"}}}, 0); !errors.Is(err, messaging.ErrInvalidHeader) {
		t.Errorf("reserved header: %v, want ErrInvalidHeader", err)
	}
	if err := Check("bad topic", []*messaging.Message{m}, 0); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("bad topic: %v, want ErrInvalidTopic", err)
	}
}

// BenchmarkCheck: Check of a call of 100 messages with IDs, times, a key
// and a header, as a Publish with caller IDs makes it (no ID to generate):
// the checks every message pays.
func BenchmarkCheck(b *testing.B) {
	msgs := make([]*messaging.Message, 100)
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: NewID(), Time: time.Now(), Key: "k", Header: messaging.Header{"a": "b"}, Payload: make([]byte, 1024)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Check("topic", msgs, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCheckBounds: the edges of the checks every adapter's Publish runs,
// as their doc states them: Time from 1970-01-01T00:00:00.001Z to
// 2262-04-11T23:47:16.854775807Z (ErrInvalidOption outside), a message of
// exactly maxSize bytes accepted and one byte more refused, a nil message
// refused with ErrInvalidOption, and message i of a call of several named
// "message i: " in the error (none for a call of one).
func TestCheckBounds(t *testing.T) {
	for _, tc := range []struct {
		what string
		at   time.Time
		ok   bool
	}{
		{"the first carried millisecond", time.UnixMilli(1), true},
		{"the Unix epoch", time.Unix(0, 0), false},
		{"a nanosecond before the first millisecond", time.UnixMilli(1).Add(-time.Nanosecond), false},
		{"the last carried nanosecond", time.Unix(0, math.MaxInt64), true},
		{"a nanosecond after the last", time.Unix(0, math.MaxInt64).Add(time.Nanosecond), false},
		{"1969", time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), false},
	} {
		err := Check("t", []*messaging.Message{{ID: "x", Time: tc.at}}, 0)
		if tc.ok && err != nil {
			t.Errorf("Time %s (%v): %v, want it accepted", tc.what, tc.at, err)
		}
		if !tc.ok && !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("Time %s (%v): %v, want ErrInvalidOption", tc.what, tc.at, err)
		}
	}
	m := &messaging.Message{ID: "id", Key: "k", Header: messaging.Header{"h": "v"}, Payload: []byte("12345")}
	if err := Check("t", []*messaging.Message{m}, m.Size()); err != nil {
		t.Errorf("a message of exactly maxSize (%d) bytes: %v, want it accepted", m.Size(), err)
	}
	if err := Publish("t", []*messaging.Message{m}, m.Size()-1); !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Errorf("a message one byte over maxSize: %v, want ErrMessageTooLarge", err)
	}
	if err := Publish("t", []*messaging.Message{{}, nil}, 0); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("a nil message: %v, want ErrInvalidOption", err)
	}
	if err := CheckMessage("t", nil, 0); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("CheckMessage of nil: %v, want ErrInvalidOption", err)
	}
	bad := &messaging.Message{Header: messaging.Header{"": "v"}}
	err := Check("t", []*messaging.Message{{}, {}, bad}, 0)
	if !errors.Is(err, messaging.ErrInvalidHeader) || !strings.Contains(err.Error(), "message 2: ") {
		t.Errorf("third of three messages bad: %v, want ErrInvalidHeader naming message 2", err)
	}
	err = Check("t", []*messaging.Message{{}, bad}, 0)
	if !errors.Is(err, messaging.ErrInvalidHeader) || !strings.Contains(err.Error(), "message 1: ") {
		t.Errorf("second of two messages bad: %v, want ErrInvalidHeader naming message 1", err)
	}
	if err := Check("t", []*messaging.Message{bad}, 0); err == nil || strings.Contains(err.Error(), "message 0") {
		t.Errorf("the one message of a call bad: %v, want an error not naming its index", err)
	}
}

// TestAdmin: an admin call on a closed client fails with ErrClosed; a bad
// topic or group with ErrInvalidTopic; a done context with its error.
func TestAdmin(t *testing.T) {
	ctx := t.Context()
	if err := Admin(ctx, false, "purge", "t", "g1", "g2"); err != nil {
		t.Fatalf("valid call: %v", err)
	}
	if err := Admin(ctx, true, "purge", "t"); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("closed: %v, want ErrClosed", err)
	}
	if err := Admin(ctx, false, "purge", "a b"); !errors.Is(err, messaging.ErrInvalidTopic) {
		t.Errorf("bad topic: %v, want ErrInvalidTopic", err)
	}
	if err := Admin(ctx, false, "purge", "t", "g", "a b"); !errors.Is(err, messaging.ErrInvalidTopic) || !strings.Contains(err.Error(), "group") {
		t.Errorf("bad second group: %v, want ErrInvalidTopic naming the group", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := Admin(done, false, "purge", "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v, want context.Canceled", err)
	}
}

// TestIDTimeEdges: IDTime refuses a version 7 UUID of another variant than
// RFC 9562's, and caps the sub-millisecond part below the next
// millisecond (rand_a past 3906 after a busy millisecond), so decoded
// times never run into the next millisecond.
func TestIDTimeEdges(t *testing.T) {
	for _, id := range []string{"01906b97-5c00-7123-0000-000000000000", "01906b97-5c00-7123-c000-000000000000", "01906b97-5c00-6123-8000-000000000000"} {
		if at, ok := IDTime(id); ok {
			t.Errorf("IDTime(%q) = %v, true; want false (not an RFC 9562 version 7 UUID)", id, at)
		}
	}
	ms := time.UnixMilli(1719792000000)
	if at, ok := IDTime("01906b97-5c00-7fff-8000-000000000000"); !ok || !at.Equal(ms.Add(time.Millisecond-1)) {
		t.Errorf("IDTime with rand_a 0xfff = %v, %v; want %v, the last nanosecond of its millisecond", at, ok, ms.Add(time.Millisecond-1))
	}
}

// TestPublishTimeOfIDOnly: a message with only an ID gets the current time.
func TestPublishTimeOfIDOnly(t *testing.T) {
	before := time.Now()
	m := &messaging.Message{ID: "mine"}
	if err := Publish("t", []*messaging.Message{m}, 0); err != nil {
		t.Fatal(err)
	}
	if after := time.Now(); m.Time.Before(before) || m.Time.After(after) {
		t.Errorf("Time %v, want the current time (between %v and %v)", m.Time, before, after)
	}
}
