package redistest_test

import (
	"context"
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

// holdServedRead is a go-redis hook that holds the reply of the first
// XREADGROUP that Redis serves entries to until released, noting the
// reading consumer. Once released, it notes the calls of that consumer's
// scripts (claimOwnScript, leaveScript: EVALSHA ... consumer ...) and,
// when fail is set, fails them with fail instead of sending them.
type holdServedRead struct {
	fail     error
	served   chan struct{} // closed once a read was served and is held
	release  chan struct{} // closed by the test: the held reply goes on
	mu       sync.Mutex
	consumer string
	calls    [][]string    // the consumer's script calls after the release: arguments, then outcome
	changed  chan struct{} // closed and replaced at every call noted
}

func newHoldServedRead(fail error) *holdServedRead {
	return &holdServedRead{fail: fail, served: make(chan struct{}), release: make(chan struct{}), changed: make(chan struct{})}
}

func (h *holdServedRead) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *holdServedRead) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}
func (h *holdServedRead) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		switch strings.ToLower(cmd.Name()) {
		case "xreadgroup":
			// A read of new entries that returned none (its block time
			// passed) fails with goredis.Nil, as a plain command (the
			// adapter's) and as go-redis's XReadGroup.
			err := next(ctx, cmd)
			if err != nil {
				return err
			}
			h.mu.Lock()
			first := h.consumer == ""
			if first {
				h.consumer = consumerArg(cmd.Args())
			}
			h.mu.Unlock()
			if first {
				close(h.served)
				<-h.release
			}
			return err
		case "evalsha", "eval":
			select {
			case <-h.release:
			default:
				return next(ctx, cmd)
			}
			h.mu.Lock()
			mine := h.consumer != "" && hasArg(cmd.Args(), h.consumer)
			h.mu.Unlock()
			if !mine {
				return next(ctx, cmd)
			}
			var err error
			if h.fail != nil {
				cmd.SetErr(h.fail)
				err = h.fail
			} else {
				err = next(ctx, cmd)
			}
			h.mu.Lock()
			h.calls = append(h.calls, append(argStrings(cmd.Args()), "=> "+errString(err)))
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
			return err
		}
		return next(ctx, cmd)
	}
}

// leaveCalled reports whether the consumer's leaveScript call (EVALSHA sha
// 1 key group consumer: no more arguments) was noted, with the calls noted
// and a channel closed at the next.
func (h *holdServedRead) leaveCalled() (bool, [][]string, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	calls := append([][]string(nil), h.calls...)
	for _, c := range calls {
		if len(c) == 7 && c[5] == h.consumer { // and the outcome
			return true, calls, h.changed
		}
	}
	return false, calls, h.changed
}

func consumerArg(args []any) string {
	for i, a := range args {
		if s, ok := a.(string); ok && strings.EqualFold(s, "group") && i+2 < len(args) {
			c, _ := args[i+2].(string)
			return c
		}
	}
	return ""
}

func hasArg(args []any, s string) bool {
	for _, a := range args {
		if v, ok := a.(string); ok && v == s {
			return true
		}
	}
	return false
}

func argStrings(args []any) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if p, ok := a.(*string); ok { // a delivery's token
			a = *p
		}
		out[i] = fmt.Sprint(a)
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// redisErr is an error reply from Redis, which the adapter does not retry.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

// TestClosedReadReleasedAtClientClose: a read that the subscription's
// Close stopped waiting for, served by Redis meanwhile, has its entries
// released when it comes back (see TestClosedReadReleased). When it comes
// back after the Client's Close closed the go-redis client, the release
// cannot be made: that is expected (the entries come back after the ack
// deadline) and must not be logged as a failure. A release that fails
// otherwise is still logged.
func TestClosedReadReleasedAtClientClose(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     error // the release's script calls fail with it
		closeAll bool  // Client.Close (owning the go-redis client), not only the subscription's
		warn     bool  // "releasing entries failed" is logged
	}{
		{name: "client closed", closeAll: true},
		{name: "release refused", fail: redisErr("ERR injected refusal"), warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			o, err := goredis.ParseURL(redistest.Broker.Endpoint(t))
			if err != nil {
				t.Fatal(err)
			}
			rc := goredis.NewClient(o)
			t.Cleanup(func() { _ = rc.Close() })
			h := newHoldServedRead(tc.fail)
			rc.AddHook(h)
			logs := newLogRecorder()
			c := mustNew(t, rc, redisadapter.WithCloseClient(true), redisadapter.WithLogger(slog.New(logs)))
			t.Cleanup(func() { _ = c.Close() })
			pub := redistest.Open(t)
			topic := topicFor(t, pub, "closedrelease")
			group := integration.UniqueName(t, "g")
			if err := pub.Provision(ctx, topic, group); err != nil {
				t.Fatal(err)
			}
			ran := make(chan struct{}, 1)
			sub := subscribe(t, c, ctx, topic, func(context.Context, *messaging.Message) error {
				ran <- struct{}{}
				return nil
			}, messaging.Group(group), messaging.AckDeadline(time.Minute))
			if err := pub.Publish(ctx, topic, messaging.NewMessage([]byte("held"))); err != nil {
				t.Fatal(err)
			}
			select {
			case <-h.served: // Redis gave the entry to the subscription's read, held here
			case <-ctx.Done():
				t.Fatal("no read was served the entry")
			}
			if tc.closeAll {
				if err := c.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			} else if err := sub.Close(); err != nil {
				t.Fatalf("subscription Close: %v", err)
			}
			close(h.release) // the read comes back: its entries are released
			for {
				left, calls, changed := h.leaveCalled()
				if left { // the release was tried before the member left again
					t.Logf("script calls after the read came back: %q", calls)
					break
				}
				select {
				case <-changed:
				case <-ctx.Done():
					t.Fatalf("the consumer did not leave again after its read came back; script calls %q", calls)
				}
			}
			var warned []string
			for _, l := range logs.all() {
				if strings.Contains(l, "releasing entries failed") {
					warned = append(warned, l)
				}
			}
			switch {
			case tc.warn && len(warned) == 0:
				t.Errorf("a release refused by Redis was not logged; logs %q", logs.all())
			case !tc.warn && len(warned) > 0:
				t.Errorf("a release that failed because the client was closed was logged as a failure: %q", warned)
			}
			select {
			case <-ran:
				t.Error("the closed subscription ran its handler")
			default:
			}
		})
	}
}
