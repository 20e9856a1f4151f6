package engine_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
)

// TestFetchFailuresLogged: a run of transient fetch failures is logged at
// Warn once (its first), the other failures at Debug, each with the count
// so far; the fetch that succeeds after them logs "fetching resumed" at
// Info with their count. With fetchWarnEvery 0 every failure is a Warn.
func TestFetchFailuresLogged(t *testing.T) {
	const failures = 4
	for _, tc := range []struct {
		name       string
		everyFetch bool // fetchWarnEvery 0 instead of the default
		warns      int
	}{
		{"default", false, 1},
		{"warn-every-failure", true, failures},
	} {
		for _, batch := range []bool{false, true} {
			name := tc.name + "/subscribe"
			if batch {
				name = tc.name + "/batch"
			}
			t.Run(name, func(t *testing.T) {
				if tc.everyFetch {
					defer engine.SetFetchWarnEvery(0)()
				}
				f := &fake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}, in: make(chan *messaging.Message, 16), onSettle: make(chan driver.Settlement, 64), failN: failures}
				lines := make(chan string, 64)
				c := engine.New(f, engine.Options{Name: "fake", Logger: slog.New(recordHandler{lines})})
				defer c.Close()
				var (
					sub messaging.Subscription
					err error
				)
				if batch {
					sub, err = c.SubscribeBatch(t.Context(), "t", func(context.Context, []*messaging.Message) []error { return nil }, messaging.Group("g"))
				} else {
					sub, err = c.Subscribe(t.Context(), "t", func(context.Context, *messaging.Message) error { return nil }, messaging.Group("g"))
				}
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				f.in <- &messaging.Message{ID: "a", Attempt: 1}
				if st := f.next(t); st.Outcome != driver.Ack {
					t.Fatalf("settled %v, want ack", st.Outcome)
				}
				// Every line was logged before the message reached its handler.
				checkFetchLog(t, lines, failures, tc.warns)
				// A second run of failures is counted from 1 again, its
				// first logged at Warn.
				f.mu.Lock()
				f.failN = f.fails + 2
				f.mu.Unlock()
				f.in <- &messaging.Message{ID: "b", Attempt: 1}
				f.in <- &messaging.Message{ID: "c", Attempt: 1}
				f.next(t)
				f.next(t)
				checkFetchLog(t, lines, 2, min(tc.warns, 2))
			})
		}
	}
}

// checkFetchLog reads the lines logged so far: failures fetch failures, the
// first at Warn and wantWarns in all, numbered from 1, then one return.
func checkFetchLog(t *testing.T, lines chan string, failures, wantWarns int) {
	t.Helper()
	var warns, debugs, resumed int
	for len(lines) > 0 {
		line := <-lines
		switch {
		case strings.Contains(line, `msg="fake: fetching failed; retrying"`):
			n := warns + debugs + 1
			if !strings.Contains(line, " failures="+strconv.Itoa(n)+" ") || !strings.Contains(line, "topic=t group=g error=connection lost") {
				t.Errorf("failure %d logged as %s", n, line)
			}
			switch {
			case strings.HasPrefix(line, "level=WARN"):
				warns++
			case strings.HasPrefix(line, "level=DEBUG"):
				if n == 1 {
					t.Errorf("the first failure of a run logged at Debug: %s", line)
				}
				debugs++
			default:
				t.Errorf("a fetch failure logged at neither Warn nor Debug: %s", line)
			}
		case strings.Contains(line, `msg="fake: fetching resumed"`):
			resumed++
			if !strings.HasPrefix(line, "level=INFO") || !strings.Contains(line, " failures="+strconv.Itoa(failures)+" ") {
				t.Errorf("the return logged as %s, want Info with failures=%d", line, failures)
			}
		default:
			t.Errorf("unexpected log line %s", line)
		}
	}
	if warns != wantWarns || warns+debugs != failures || resumed != 1 {
		t.Errorf("%d failures logged %d times at Warn and %d at Debug, and %d returns; want %d at Warn, %d in all, 1 return", failures, warns, debugs, resumed, wantWarns, failures)
	}
}
