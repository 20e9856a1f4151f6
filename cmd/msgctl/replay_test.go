package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestReplayFollowIgnoresIdle: replay --follow keeps printing new messages
// past --idle (it is --idle 0), until interrupted, which ends it with exit
// status 0. In process, on a named in-process broker the test publishes to.
func TestReplayFollowIgnoresIdle(t *testing.T) {
	url := fmt.Sprintf("mem://replay-follow-%d", time.Now().UnixNano())
	c := open(t, url)
	out := &screen{}
	publish := func(payload string) {
		t.Helper()
		if err := c.Publish(t.Context(), "orders", messaging.NewMessage([]byte(payload))); err != nil {
			t.Fatal(err)
		}
	}
	printed := func(payload string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), payload); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("replay did not print %q within 10s; printed:\n%s", payload, out.String())
			}
		}
	}
	publish("early")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"replay", "orders", "--follow", "--idle", "10ms", "--url", url}, strings.NewReader(""), out, io.Discard, func(int) {})
	}()
	printed("early")
	select {
	case code := <-done:
		t.Fatalf("replay --follow ended (exit %d) after --idle; printed:\n%s", code, out.String())
	case <-time.After(300 * time.Millisecond): // 30 times --idle
	}
	publish("late")
	printed("late")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("interrupted replay --follow: exit %d, want 0", code)
	}
}

// TestReplayFromADurationAgo: --from DURATION starts that long ago, so a
// message published just now is printed.
func TestReplayFromADurationAgo(t *testing.T) {
	url := fmt.Sprintf("mem://replay-ago-%d", time.Now().UnixNano())
	c := open(t, url)
	if err := c.Publish(t.Context(), "orders", messaging.NewMessage([]byte("recent"))); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runInProcess(t, "replay", "orders", "--from", "1h", "--idle", "100ms", "--url", url)
	if code != 0 || !strings.Contains(out, "recent") {
		t.Fatalf("replay --from 1h: exit %d, printed %q, want the message published now; stderr:\n%s", code, out, errOut)
	}
}
