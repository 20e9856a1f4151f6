package fault

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// AwaitGoroutine returns once some goroutine of the process is in state
// (as a stack trace says it: "select", "chan receive", ...; "" for any)
// with fn (a function's qualified name, or a part of it) on its stack: the
// code under test has reached a wait the test is about. It fails t after
// 10s.
func AwaitGoroutine(t testing.TB, fn, state string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, fn) && (state == "" || strings.Contains(g, "["+state)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine in %s (state %q) within 10s", fn, state)
		}
		time.Sleep(time.Millisecond) // polling
	}
}
