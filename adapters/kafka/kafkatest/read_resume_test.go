package kafkatest_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

// signalHandler is a slog.Handler that signals ch (without blocking) for
// each record whose message is msg.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
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

// TestReadResumesAfterFetchFailure: when a partition's fetch fails (the
// broker is cut off) and is retried, the reader resumes after the last
// record it handed over: nothing is delivered twice, and the partition's
// records keep their log order.
func TestReadResumesAfterFetchFailure(t *testing.T) {
	k := kafkatest.StartCluster(t, 1)
	url := strings.Replace(privateURL(k), "partitions=3", "partitions=1", 1)
	failed := make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := kafka.Open(ctx, url, kafka.WithLogger(slog.New(signalHandler{msg: "kafka: fetch failed; retrying", ch: failed})))
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
	select {
	case <-failed:
	case <-time.After(60 * time.Second):
		t.Fatal("no failed fetch logged within 60s of the cut")
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
}
