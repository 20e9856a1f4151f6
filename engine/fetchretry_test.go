package engine_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
	"github.com/msgkit/messaging/internal/retrylog"
)

// logFake is fake with a log to Read: Next fails like Receive, failN times
// first, then returns the messages of in.
type logFake struct{ *fake }

func (f logFake) OpenLog(context.Context, string, messaging.Position) (driver.Log, error) {
	return f, nil
}

func (f logFake) Next(ctx context.Context) ([]*messaging.Message, error) {
	ds, err := f.Receive(ctx, 1)
	if err != nil {
		return nil, err
	}
	return []*messaging.Message{ds[0].Msg}, nil
}

func (f logFake) Close() error { return nil }

// TestFetchFailuresLogged: a run of transient fetch failures is logged at
// Warn once (its first), the other failures at Debug, each with the count
// so far; the fetch that succeeds after them logs "fetching resumed" at
// Info with their count, before the handler runs; a later run counts from
// 1 again. With retrylog.Every 0 every failure is a Warn. In Subscribe,
// SubscribeBatch and Read alike.
func TestFetchFailuresLogged(t *testing.T) {
	const failures = 4
	for _, tc := range []struct {
		name       string
		everyFetch bool // retrylog.Every 0 instead of the default
		warns      int
	}{
		{"default", false, 1},
		{"warn-every-failure", true, failures},
	} {
		for _, mode := range []string{"subscribe", "batch", "read"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				if tc.everyFetch {
					old := retrylog.Every
					retrylog.Every = 0
					defer func() { retrylog.Every = old }()
				}
				f := logFake{&fake{caps: messaging.Capabilities{BrokerAttempts: true, NativeDelay: true, Replay: true}, in: make(chan *messaging.Message, 16), onSettle: make(chan driver.Settlement, 64), failN: failures}}
				lines := make(chan string, 64)
				c := engine.New(f, engine.Options{Name: "fake", Logger: slog.New(recordHandler{lines})})
				defer c.Close()
				handled := make(chan string, 16)
				handle := func(_ context.Context, m *messaging.Message) error {
					handled <- m.ID
					return nil
				}
				var (
					sub messaging.Subscription
					err error
				)
				switch mode {
				case "subscribe":
					sub, err = c.Subscribe(t.Context(), "t", handle, messaging.Group("g"))
				case "batch":
					sub, err = c.SubscribeBatch(t.Context(), "t", func(ctx context.Context, ms []*messaging.Message) []error {
						for _, m := range ms {
							_ = handle(ctx, m)
						}
						return nil
					}, messaging.Group("g"))
				case "read":
					sub, err = c.Read(t.Context(), "t", messaging.Earliest, handle)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				group := "g"
				if mode == "read" {
					group = ""
				}
				awaitHandled := func(id string) {
					t.Helper()
					select {
					case got := <-handled:
						if got != id {
							t.Fatalf("handled %s, want %s", got, id)
						}
					case <-time.After(10 * time.Second):
						t.Fatalf("%s not handled within 10s", id)
					}
				}
				f.in <- &messaging.Message{ID: "a", Attempt: 1}
				awaitHandled("a")
				checkFetchLog(t, lines, group, failures, tc.warns)
				// A second run of failures.
				f.mu.Lock()
				f.failN = f.fails + 2
				f.mu.Unlock()
				f.in <- &messaging.Message{ID: "b", Attempt: 1}
				f.in <- &messaging.Message{ID: "c", Attempt: 1}
				awaitHandled("b")
				awaitHandled("c")
				checkFetchLog(t, lines, group, 2, min(tc.warns, 2))
			})
		}
	}
}

// checkFetchLog reads the lines logged so far: failures fetch failures of
// topic t and group, the first at Warn and wantWarns in all, numbered from
// 1, then one return.
func checkFetchLog(t *testing.T, lines chan string, group string, failures, wantWarns int) {
	t.Helper()
	var warns, debugs, resumed int
	for len(lines) > 0 {
		line := <-lines
		switch {
		case strings.Contains(line, `msg="fake: fetching failed; retrying"`):
			n := warns + debugs + 1
			if !strings.Contains(line, " failures="+strconv.Itoa(n)+" ") || !strings.Contains(line, "topic=t group="+group+" error=connection lost") {
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
