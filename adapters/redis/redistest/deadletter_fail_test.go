package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	redisadapter "github.com/msgkit/messaging/adapters/redis"
	"github.com/msgkit/messaging/adapters/redis/redistest"
	"github.com/msgkit/messaging/integration"
)

// logRecorder is a slog.Handler that keeps every record as a line (the
// message, then key=value attributes), so a test can wait for one.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced at every new line
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// find returns the first line containing every one of parts.
func (l *logRecorder) find(parts ...string) (string, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return line, true, nil
	}
	return "", false, l.changed
}

// wait returns the first line containing every one of parts, failing the
// test when there is none within timeout.
func (l *logRecorder) wait(t *testing.T, timeout time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		line, ok, changed := l.find(parts...)
		if ok {
			return line
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no log line with %q within %v", parts, timeout)
		}
	}
}

// openWithBrokenDeadLetters returns a client dead-lettering to topic.dlq, a
// unique topic with group provisioned, and its dead-letter key made a
// string, so that every dead letter fails with a WRONGTYPE reply.
func openWithBrokenDeadLetters(t *testing.T, logs *logRecorder) (c *redisadapter.Client, topic, group string) {
	t.Helper()
	c = redistest.Open(t, redisadapter.WithDeadLetterSuffix(".dlq"), redisadapter.WithLogger(slog.New(logs)))
	topic = topicFor(t, c, "dlfail")
	group = integration.UniqueName(t, "g")
	dlq := c.StreamKey(topic + ".dlq")
	deleteKeysAtEnd(t, dlq)
	if err := c.Redis().Set(t.Context(), dlq, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	return c, topic, group
}

// An entry a crashed consumer held on its last allowed attempt is given up
// by the member that reclaims it; when its dead letter cannot be written
// (an error reply, which retrying does not cure) the subscription still
// closes at once, the log says why, and the entry stays pending (not lost).
// It used to be settled inside the fetch and retried for up to 15 minutes,
// so Close hung.
func TestReclaimedGiveUpWithFailingDeadLetterCloses(t *testing.T) {
	logs := newLogRecorder()
	c, topic, group := openWithBrokenDeadLetters(t, logs)
	ctx := t.Context()
	key := c.StreamKey(topic)
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "stuck"}); err != nil {
		t.Fatal(err)
	}
	// A consumer that read it and crashed: its one allowed attempt.
	res, err := c.Redis().XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "crashed", Streams: []string{key, ">"}, Count: 1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 1 {
		t.Fatalf("XREADGROUP: %v %v", res, err)
	}
	sub, err := c.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
		t.Errorf("%s handled again with MaxAttempts(1)", m.ID)
		return nil
	}, messaging.Group(group), messaging.MaxAttempts(1), messaging.AckDeadline(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	logs.wait(t, 10*time.Second, "message not redelivered", "id=stuck")

	closed := make(chan struct{})
	go func() {
		_ = sub.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		redistest.Kill(t, c) // ends the retries, so that the cleanups can run
		t.Fatal("Subscription.Close blocked after a reclaimed entry's dead letter failed")
	}
	if line, ok, _ := logs.find("settling failed", "WRONGTYPE"); !ok {
		t.Errorf("no settling failure naming the WRONGTYPE reply in the log %q", logs.all())
	} else if !strings.Contains(line, "stuck") {
		t.Errorf("the settling failure does not name the message: %s", line)
	}
	pend, err := c.Redis().XPending(ctx, key, group).Result()
	if err != nil || pend.Count != 1 {
		t.Errorf("after the failed dead letter: %d pending (%v), want the entry kept", pend.Count, err)
	}
}

// A batch of settlements in which one dead letter fails still acknowledges
// the other messages, promptly, and keeps only the given-up one pending.
// The dead letter used to be retried until the settle timeout, after which
// the batch's XACK could not be sent: every ack in it was lost.
func TestFailingDeadLetterKeepsTheBatchAcks(t *testing.T) {
	logs := newLogRecorder()
	c, topic, group := openWithBrokenDeadLetters(t, logs)
	ctx := t.Context()
	key := c.StreamKey(topic)
	ids := publishN(t, c, topic, "m", 5)
	poison := ids[2]
	sub := subscribeBatch(t, c, topic, func(_ context.Context, msgs []*messaging.Message) []error {
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			if m.ID == poison {
				errs[i] = messaging.Permanent(errors.New("poison"))
			}
		}
		return errs
	}, messaging.Group(group), messaging.BatchSize(len(ids)))
	line := logs.wait(t, 10*time.Second, "settling failed")
	if !strings.Contains(line, "WRONGTYPE") || !strings.Contains(line, poison) {
		t.Errorf("the settling failure does not name the message and the WRONGTYPE reply: %s", line)
	}
	_ = sub.Close() // waits for every settlement
	entries, err := c.Redis().XRange(ctx, key, "-", "+").Result()
	if err != nil || len(entries) != len(ids) {
		t.Fatalf("XRANGE: %d entries (%v), want %d", len(entries), err, len(ids))
	}
	pend, err := c.Redis().XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: key, Group: group, Start: "-", End: "+", Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 1 || pend[0].ID != entries[2].ID {
		t.Fatalf("pending %v, want only the poison message's entry %s", pend, entries[2].ID)
	}
}
