// Package retrylog logs a run of retried failures (a broker away, a fetch or
// a join failing again and again) without a line per retry: the engine's
// fetch loops and the adapters' own retry loops log the same way.
package retrylog

import (
	"context"
	"log/slog"
	"time"
)

// Every is how often a run of failures is logged at Warn: its first failure
// at once, then one every Every; the failures between are logged at Debug.
// A variable for tests.
var Every = 10 * time.Second

// Run is the state of one retry loop's run of failures. The zero value is
// ready: no run. A Run is used by its loop's goroutine only.
type Run struct {
	failures int       // failures since the last success
	since    time.Time // when the first of them failed
	warned   time.Time // when the run was last logged at Warn
}

// Failed records a failure and logs msg with attrs, then "failures" (the
// count in this run, from 1) and "failing_for" (the time since its first):
// at Warn for the run's first failure and then once every Every, otherwise
// at Debug.
func (r *Run) Failed(l *slog.Logger, msg string, attrs ...any) {
	now := time.Now()
	if r.failures == 0 {
		r.since = now
	}
	r.failures++
	level := slog.LevelDebug
	if r.failures == 1 || now.Sub(r.warned) >= Every {
		level, r.warned = slog.LevelWarn, now
	}
	l.Log(context.Background(), level, msg, append(attrs, "failures", r.failures, "failing_for", now.Sub(r.since).Round(time.Millisecond))...)
}

// Failing reports whether a run is going on: failures since the last
// success. Check it before Succeeded where successes are frequent (every
// fetch, every record): Succeeded's arguments are built, and their values
// boxed on the heap, at every call.
func (r *Run) Failing() bool { return r.failures > 0 }

// Succeeded ends the run, if there is one (call it when the retried
// operation succeeds: for a fetch, once it returns messages): it logs msg
// at Info with attrs, then "failures" (the run's count) and "after" (the
// time since its first failure). Without a run it does nothing.
func (r *Run) Succeeded(l *slog.Logger, msg string, attrs ...any) {
	if r.failures == 0 {
		return
	}
	l.Info(msg, append(attrs, "failures", r.failures, "after", time.Since(r.since).Round(time.Millisecond))...)
	r.failures = 0
}
