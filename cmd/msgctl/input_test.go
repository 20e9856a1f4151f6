package main

// In-process tests of the input commands read: run gets the interrupted
// context that main's signal handler makes, without a signal's timing.

import (
	"bytes"
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptWhileReadingAFileFromStdin: publish --file - reads stdin
// to its end; an interruption ends it (exit status 130, saying
// "interrupted") although stdin, held open, never ends.
func TestInterruptWhileReadingAFileFromStdin(t *testing.T) {
	stdin, w := io.Pipe() // never written: the input never ends
	t.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(interrupt{syscall.SIGINT})
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"publish", "t", "--file", "-", "--url", "mem://"}, stdin, io.Discard, &errb, func(int) {})
	}()
	select {
	case code := <-done:
		if code != 130 || !strings.Contains(errb.String(), "msgctl publish: interrupted") {
			t.Errorf("exit status %d, want 130 saying interrupted; stderr:\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		_ = w.Close() // let it end
		<-done
		t.Error("publish --file - did not end within 10s of its interruption")
	}
}
