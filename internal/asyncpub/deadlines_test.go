package asyncpub_test

import (
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging/internal/asyncpub"
)

// TestDeadlines: a message's deadline is the timeout after it entered, or
// after its key's last answer if that is later; keys do not share clocks;
// Forget drops a key's clock.
func TestDeadlines(t *testing.T) {
	const timeout = time.Second
	d := asyncpub.NewDeadlines[string](timeout)
	entered := time.Now()
	if got := d.Deadline("a", entered); !got.Equal(entered.Add(timeout)) {
		t.Errorf("no answer yet: deadline %v after entry, want %v", got.Sub(entered), timeout)
	}
	old := entered.Add(-time.Hour) // waited long behind a slow broker
	d.Answered("a")
	answered := time.Now()
	got := d.Deadline("a", old)
	if got.Before(answered.Add(timeout-time.Millisecond)) || got.After(time.Now().Add(timeout)) {
		t.Errorf("after an answer: deadline %v from the answer, want about %v", got.Sub(answered), timeout)
	}
	if b := d.Deadline("b", old); !b.Equal(old.Add(timeout)) {
		t.Errorf("key b has no answer: deadline %v after its entry, want %v: a's answer does not count for b", b.Sub(old), timeout)
	}
	if floor := d.Floor("a"); !floor.Equal(got) {
		t.Errorf("Floor %v, want the deadline of an old message %v", floor, got)
	}
	d.Forget(func(k string) bool { return k == "a" })
	if a, b := d.Deadline("a", old), d.Deadline("b", old); !a.Equal(b) {
		t.Errorf("after Forget: deadline of a %v, want that of a key never answered %v", a, b)
	}
}

// TestDeadlinesAnsweredConcurrently: concurrent answers keep the latest
// (the clock never goes back), under -race.
func TestDeadlinesAnsweredConcurrently(t *testing.T) {
	d := asyncpub.NewDeadlines[int](time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				d.Answered(1)
			}
		})
	}
	wg.Wait()
	before := time.Now()
	if floor := d.Floor(1); floor.Before(before.Add(time.Second - 50*time.Millisecond)) {
		t.Errorf("floor %v before the last answers' time plus the timeout", floor.Sub(before))
	}
}
