package retrylog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// lines is a slog.Handler keeping each record as "LEVEL msg k=v ...".
type lines struct{ got *[]string }

func (h lines) Enabled(context.Context, slog.Level) bool { return true }
func (h lines) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	*h.got = append(*h.got, line)
	return nil
}
func (h lines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lines) WithGroup(string) slog.Handler      { return h }

// check fails unless got has as many lines as want, each starting with
// want's.
func check(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d: %q, want it to start with %q", i, got[i], want[i])
		}
	}
}

// TestRun: a run's first failure is a Warn, the others Debug, each with
// the count so far; the success after it an Info with the count, once;
// Failing is true in between only; a success without a run logs nothing;
// the next run counts from 1 again.
func TestRun(t *testing.T) {
	var got []string
	l := slog.New(lines{&got})
	var r Run
	r.Succeeded(l, "resumed") // no run: nothing logged
	if r.Failing() {
		t.Error("Failing before any failure")
	}
	for range 3 {
		r.Failed(l, "failed", "topic", "t")
	}
	if !r.Failing() {
		t.Error("not Failing after failures")
	}
	r.Succeeded(l, "resumed", "topic", "t")
	if r.Failing() {
		t.Error("Failing after Succeeded")
	}
	r.Succeeded(l, "resumed") // the run has ended: nothing logged
	r.Failed(l, "failed")
	r.Succeeded(l, "resumed")
	check(t, got, []string{
		"WARN failed topic=t failures=1 failing_for=",
		"DEBUG failed topic=t failures=2 failing_for=",
		"DEBUG failed topic=t failures=3 failing_for=",
		"INFO resumed topic=t failures=3 after=",
		"WARN failed failures=1 failing_for=",
		"INFO resumed failures=1 after=",
	})
}

// TestRunWarnsAgainEvery: within a run, a failure Every after the last
// Warn is a Warn again.
func TestRunWarnsAgainEvery(t *testing.T) {
	old := Every
	Every = 20 * time.Millisecond
	defer func() { Every = old }()
	var got []string
	l := slog.New(lines{&got})
	var r Run
	r.Failed(l, "failed")
	r.Failed(l, "failed")
	time.Sleep(Every) // the subject: time passing since the last Warn
	r.Failed(l, "failed")
	r.Failed(l, "failed")
	check(t, got, []string{
		"WARN failed failures=1",
		"DEBUG failed failures=2",
		"WARN failed failures=3",
		"DEBUG failed failures=4",
	})
}
