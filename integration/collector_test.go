package integration_test

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
)

// fatalTB is a testing.TB whose Fatalf reports its message on msgs and ends
// the goroutine, as testing's does.
type fatalTB struct {
	testing.TB
	msgs chan<- string
}

func (f fatalTB) Helper() {}
func (f fatalTB) Fatalf(format string, args ...any) {
	f.msgs <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestWaitDistinctProgress: the wait returns once n distinct messages came,
// however long that takes while they keep coming, and fails once stall
// passes without a new one.
func TestWaitDistinctProgress(t *testing.T) {
	const stall = time.Second
	c := integration.NewCollector()
	go func() {
		for i := range 30 { // 30 × 50ms: longer than stall in all, far shorter between two
			c.Add(&messaging.Message{ID: strconv.Itoa(i)})
			time.Sleep(50 * time.Millisecond) // the pace of deliveries is the subject
		}
	}()
	c.WaitDistinctProgress(t, 30, stall)

	c = integration.NewCollector()
	msgs := make(chan string, 1)
	go func() {
		c.WaitDistinctProgress(fatalTB{t, msgs}, 5, stall)
		msgs <- "returned"
	}()
	c.Add(&messaging.Message{ID: "a"})
	c.Add(&messaging.Message{ID: "b"})
	select {
	case got := <-msgs:
		if want := "no new message for 1s: 2 of 5 distinct"; !strings.HasPrefix(got, want) {
			t.Errorf("the stalled wait ended with %q, want %q...", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled wait had not failed after 10s")
	}
}
