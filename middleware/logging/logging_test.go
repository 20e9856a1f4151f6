package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/middleware/logging"
	"github.com/msgkit/messaging/middleware/retry"
)

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	buf.Reset()
	return out
}

func TestRecords(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := mwtest.Memory(t)
	h := messaging.Chain(func(_ context.Context, m *messaging.Message) error {
		if string(m.Payload) == "bad" {
			return errors.New("boom")
		}
		return nil
	}, mwtest.Must(logging.New(l)), mwtest.Must(deadletter.New(c, "dlq")), mwtest.Must(retry.New(retry.WithMaxAttempts(2))))
	ctx := context.Background()
	cases := []struct {
		msg          *messaging.Message
		level, text  string
		wantErrField bool
	}{
		{&messaging.Message{ID: "1", Topic: "t", Group: "g", Attempt: 1}, "DEBUG", "message handled", false},
		{&messaging.Message{ID: "2", Topic: "t", Attempt: 1, Payload: []byte("bad")}, "WARN", "message failed, will be retried", true},
		{&messaging.Message{ID: "2", Topic: "t", Attempt: 2, Payload: []byte("bad")}, "WARN", "message dead-lettered", false},
	}
	for _, tc := range cases {
		_ = h(ctx, tc.msg)
		rs := records(t, &buf)
		if len(rs) != 1 {
			t.Fatalf("%d records, want 1", len(rs))
		}
		r := rs[0]
		if r["level"] != tc.level || r["msg"] != tc.text || r["id"] != tc.msg.ID || r["topic"] != "t" || r["attempt"] != float64(tc.msg.Attempt) {
			t.Errorf("record %v, want %s %q", r, tc.level, tc.text)
		}
		if _, ok := r["error"]; ok != tc.wantErrField {
			t.Errorf("record %v: error field present %v, want %v", r, ok, tc.wantErrField)
		}
	}

	pub := mwtest.Must(logging.Publisher(c, l))
	_ = pub.Publish(ctx, "bad topic!", &messaging.Message{})
	if r := records(t, &buf)[0]; r["level"] != "ERROR" || r["msg"] != "publish failed" {
		t.Errorf("publish failure record %v", r)
	}
}

// TestMaxAttemptsGiveUpLoggedAsPermanent: without a retry layer, the failed
// last attempt of a subscription with MaxAttempts(2), which the adapter
// gives up, is logged as a permanent failure at Error, not as retried.
func TestMaxAttemptsGiveUpLoggedAsPermanent(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mwtest.GiveUp(t, mwtest.Must(logging.New(l)))
	wantLevelsAndMessages(t, &buf, "WARN message failed, will be retried", "ERROR message failed permanently")
}

// TestDeadLetterRecordNamesTopic: the record of a message dead-lettered by
// a layer inside names the dead-letter topic.
func TestDeadLetterRecordNamesTopic(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := mwtest.Memory(t)
	h := messaging.Chain(func(context.Context, *messaging.Message) error { return messaging.Permanent(errors.New("boom")) },
		mwtest.Must(logging.New(l)), mwtest.Must(deadletter.New(c, "dlq")))
	if err := h(context.Background(), &messaging.Message{ID: "1", Topic: "t", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if r := records(t, &buf)[0]; r["msg"] != "message dead-lettered" || r["dead_letter_topic"] != "dlq" {
		t.Fatalf("record %v, want a dead-lettered record with dead_letter_topic dlq", r)
	}
}

// TestDuplicateAtSuccessLevel: a duplicate skipped by a dedupe layer inside
// is logged at the success level (WithSuccessLevel).
func TestDuplicateAtSuccessLevel(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := messaging.Chain(func(context.Context, *messaging.Message) error { return nil },
		mwtest.Must(logging.New(l, logging.WithSuccessLevel(slog.LevelInfo))), mwtest.Must(dedupe.New(dedupe.NewMemoryStore())))
	for range 2 {
		if err := h(context.Background(), &messaging.Message{ID: "1", Topic: "t", Group: "g", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	wantLevelsAndMessages(t, &buf, "INFO message handled", "INFO duplicate message skipped")
}

// wantLevelsAndMessages checks that buf holds one JSON record per entry of
// want, whose "LEVEL message" is that entry, in that order.
func wantLevelsAndMessages(t *testing.T, buf *bytes.Buffer, want ...string) {
	t.Helper()
	rs := records(t, buf)
	if len(rs) != len(want) {
		t.Fatalf("%d records, want %d: %v", len(rs), len(want), rs)
	}
	for i, w := range want {
		if got := fmt.Sprint(rs[i]["level"], " ", rs[i]["msg"]); got != w {
			t.Errorf("record %d: %q, want %q", i+1, got, w)
		}
	}
}

// TestPublisherSuccessLevel: a successful publish is logged at Debug, or at
// the level WithSuccessLevel sets.
func TestPublisherSuccessLevel(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := mwtest.Memory(t)
	for _, tc := range []struct {
		opts []logging.Option
		want string
	}{{nil, "DEBUG"}, {[]logging.Option{logging.WithSuccessLevel(slog.LevelWarn)}, "WARN"}} {
		pub := mwtest.Must(logging.Publisher(c, l, tc.opts...))
		if err := pub.Publish(context.Background(), "t", &messaging.Message{}); err != nil {
			t.Fatal(err)
		}
		if r := records(t, &buf)[0]; r["level"] != tc.want || r["msg"] != "published" {
			t.Errorf("record %v, want %s published", r, tc.want)
		}
	}
}
