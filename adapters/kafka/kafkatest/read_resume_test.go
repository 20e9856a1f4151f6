package kafkatest_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// signalHandler is a slog.Handler that keeps every record as a line
// ("LEVEL message key=value ...") and signals ch (without blocking) for each
// record whose message is msg.
type signalHandler struct {
	msg   string
	ch    chan struct{}
	mu    *sync.Mutex
	lines *[]string
}

func newSignalHandler(msg string) signalHandler {
	return signalHandler{msg: msg, ch: make(chan struct{}, 1), mu: new(sync.Mutex), lines: new([]string)}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, line)
	h.mu.Unlock()
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// logged returns the lines whose message starts with prefix.
func (h signalHandler) logged(prefix string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range *h.lines {
		if _, msg, _ := strings.Cut(l, " "); strings.HasPrefix(msg, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestReadResumesAfterFetchFailure: when a partition's fetch fails (the
// broker is cut off) and is retried, the reader resumes after the last
// record it handed over: nothing is delivered twice, and the partition's
// records keep their log order. The failures are logged as one run (the
// first at Warn, the others at Debug, numbered), and the first record after
// them as "kafka: fetch resumed" at Info with their count.
func TestReadResumesAfterFetchFailure(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	url := strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1)
	logs := newSignalHandler("kafka: fetch failed; retrying")
	failed := logs.ch
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := kafka.Open(ctx, url, kafka.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := integration.UniqueName(t, "resume")
	publish := func(prefix string) {
		t.Helper()
		msgs := make([]*messaging.Message, 5)
		for i := range msgs {
			msgs[i] = &messaging.Message{ID: prefix + strconv.Itoa(i)}
		}
		if err := c.Publish(t.Context(), topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	publish("a")
	ch := make(chan *messaging.Message, 100)
	sub, err := c.Read(t.Context(), topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		ch <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	var got []string
	for range 5 {
		got = append(got, recv(t, ch).ID)
	}
	k.Cut()
	// Two failed fetches: a run, the second logged at Debug.
	timeout := time.After(60 * time.Second)
	for len(logs.logged("kafka: fetch failed; retrying")) < 2 {
		select {
		case <-failed:
		case <-timeout:
			t.Fatal("not two failed fetches logged within 60s of the cut")
		}
	}
	k.Restore()
	publish("b")
	for got[len(got)-1] != "b4" {
		got = append(got, recv(t, ch).ID)
	}
	want := []string{"a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("delivered %v, want %v (each once, in log order)", got, want)
	}
	failures := logs.logged("kafka: fetch failed; retrying")
	for i, l := range failures {
		level := "DEBUG"
		if i == 0 {
			level = "WARN"
		}
		if !strings.HasPrefix(l, level+" ") || !strings.Contains(l, " partition=0 ") || !strings.Contains(l, " failures="+strconv.Itoa(i+1)+" ") {
			t.Errorf("failure %d of the run logged as %q, want %s with partition=0 failures=%d", i+1, l, level, i+1)
		}
	}
	resumed := logs.logged("kafka: fetch resumed")
	if len(resumed) != 1 || !strings.HasPrefix(resumed[0], "INFO ") || !strings.Contains(resumed[0], " partition=0 offset=5 failures="+strconv.Itoa(len(failures))+" ") {
		t.Errorf("the return logged as %q, want one Info line with partition=0 offset=5 failures=%d", resumed, len(failures))
	}
}
