package memory_test

import (
	"maps"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
)

// TestReleaseDoesNotCountAttempt: a message fetched and released unhandled
// when its subscription stops (queued behind a handler that the stop
// interrupts) comes back with Attempt 1: the memory broker gives the
// attempt back, as driver.Release asks where the broker allows; the
// interrupted one counts its attempt, as after a failure.
func TestReleaseDoesNotCountAttempt(t *testing.T) {
	const topic = "release-attempt"
	c := mustNew(t)
	t.Cleanup(func() { _ = c.Close() })
	memory.StopHoldingTwo(t, c, topic)

	got := deliveries(t, c, topic, 2, messaging.Group("g"))
	attempts := map[string]int{}
	for range 2 {
		select {
		case m := <-got:
			attempts[m.ID] = m.Attempt
		case <-time.After(10 * time.Second):
			t.Fatalf("after the stop, only %v came back", attempts)
		}
	}
	if want := map[string]int{"handled": 2, "queued": 1}; !maps.Equal(attempts, want) {
		t.Errorf("attempts after the stop: %v, want %v (a released message keeps its attempt)", attempts, want)
	}
}
