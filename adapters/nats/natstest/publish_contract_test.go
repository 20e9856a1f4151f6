package natstest_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestPublishHeaderNamesNATSRefuses: header names that messaging.
// ValidateHeader accepts but nats.go refuses to write verbatim (printable
// ASCII with one of "()/,;<=>?@[\]{}, which nats.go's publish rejects with
// ErrBadHeaderMsg) reach the consumer as published, through Publish and
// PublishAsync, in both modes.
func TestPublishHeaderNamesNATSRefuses(t *testing.T) {
	header := messaging.Header{
		"a/b": "slash", "x(y)": "parens", "k=v": "equals", "user@host": "at", "[i]": "brackets",
		`q"uote`: "quote", "a,b;c": "comma", "a<b>?": "angle", `back\slash`: "backslash", "{c}": "braces",
		"plain": "héllo",
	}
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			c := natstest.Open(t, natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "hdr-names")
			t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
			col := integration.NewCollector()
			var opts []messaging.SubscribeOption
			if mode == natsadapter.ModeJetStream {
				opts = append(opts, messaging.Group("g"), messaging.StartAt(messaging.Earliest))
			}
			sub, err := c.Subscribe(t.Context(), topic, col.Handler(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			sync := &messaging.Message{ID: "sync", Payload: []byte("p"), Header: header}
			if err := c.Publish(ctx, topic, sync); err != nil {
				t.Errorf("Publish: %v", err)
			}
			async := &messaging.Message{ID: "async", Payload: []byte("p"), Header: header}
			var asyncErr error
			c.PublishAsync(ctx, topic, async, func(_ *messaging.Message, err error) { asyncErr = err })
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if asyncErr != nil {
				t.Errorf("PublishAsync: %v", asyncErr)
			}
			if t.Failed() {
				return
			}
			col.WaitDistinct(t, 2, 10*time.Second)
			for _, m := range col.Messages() {
				if len(m.Header) != len(header) {
					t.Errorf("%s delivered with header %q, want %q", m.ID, m.Header, header)
					continue
				}
				for k, v := range header {
					if m.Header[k] != v {
						t.Errorf("%s delivered with header %q, want %q", m.ID, m.Header, header)
						break
					}
				}
			}
		})
	}
}

// TestPublishAsyncNoStreamKeepsKeyOrder: a message that finds no stream
// (deleted behind the client, which still has it cached) is sent again
// once the stream exists again, before the messages of its key given
// after it: here another client creates the stream again right after the
// first message found none, and the messages given then are stored after
// it.
func TestPublishAsyncNoStreamKeepsKeyOrder(t *testing.T) {
	c := natstest.Open(t)
	other := natstest.Open(t)
	topic := integration.UniqueName(t, "nostream-order")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, &messaging.Message{Payload: []byte("-1")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
	if err := other.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	var failed failures
	done := failed.done
	const n = 10
	c.PublishAsync(ctx, topic, &messaging.Message{Key: "k", Payload: []byte("0")}, done)
	// The server has answered the first message (no stream) once a flush
	// of c's connection returns; the stream is then created again.
	if err := c.Conn().FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(ctx, topic, &messaging.Message{Payload: []byte("-1")}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		c.PublishAsync(ctx, topic, &messaging.Message{Key: "k", Payload: []byte(strconv.Itoa(i))}, done)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	failed.none(t, "after the stream was created again")
	js, err := c.JetStream().Stream(ctx, c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for seq := uint64(1); len(got) < n; seq++ {
		raw, err := js.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stored message %d: %v (read %v)", seq, err, got)
		}
		if string(raw.Data) != "-1" {
			got = append(got, string(raw.Data))
		}
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("messages of key k stored in the order %v, want 0 to %d", got, n-1)
		}
	}
}

// TestPublishRecreatesStreamDeletedElsewhere: a topic deleted by another
// client, while the publisher still knows its stream, is created again by
// the publisher's next Publish (the messages found no stream: nothing was
// stored, so Publish sends them again after the stream is back), which
// succeeds and stores every message of the call in order.
func TestPublishRecreatesStreamDeletedElsewhere(t *testing.T) {
	c, other := natstest.Open(t), natstest.Open(t)
	topic := integration.UniqueName(t, "recreate-pub")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = other.DeleteTopic(context.Background(), topic) })
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "old"}); err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &messaging.Message{ID: "new-0"}, &messaging.Message{ID: "new-1"}); err != nil {
		t.Fatalf("Publish after another client deleted the topic: %v", err)
	}
	js, err := c.JetStream().Stream(ctx, c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	if n := js.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("the recreated stream holds %d messages, want 2", n)
	}
	for seq, want := range map[uint64]string{1: "new-0", 2: "new-1"} {
		raw, err := js.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		if id := raw.Header.Get(natsadapter.HeaderMsgID); id != want {
			t.Errorf("stored message %d is %q, want %q", seq, id, want)
		}
	}
}

// TestPublishDistinctIDsNotDuplicates: an ID that NATS headers cannot
// carry verbatim (here with a newline) travels quoted in Nats-Msg-Id; an
// ID that is that quoted form itself is another message, not a duplicate
// of the first: the stream stores both, and consumers get each ID.
func TestPublishDistinctIDsNotDuplicates(t *testing.T) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "quoted-ids")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	unsafe := &messaging.Message{ID: "a\nb", Payload: []byte("unsafe")}
	if err := c.Publish(ctx, topic, unsafe); err != nil {
		t.Fatal(err)
	}
	quoted := &messaging.Message{ID: strconv.QuoteToASCII(unsafe.ID), Payload: []byte("quoted")}
	if err := c.Publish(ctx, topic, quoted); err != nil {
		t.Errorf("Publish of ID %s after ID %q: %v", quoted.ID, unsafe.ID, err)
	}
	async := &messaging.Message{ID: strconv.QuoteToASCII("c\x00"), Payload: []byte("async")}
	var asyncErr error
	c.PublishAsync(ctx, topic, &messaging.Message{ID: "c\x00", Payload: []byte("async unsafe")}, nil)
	c.PublishAsync(ctx, topic, async, func(_ *messaging.Message, err error) { asyncErr = err })
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if asyncErr != nil {
		t.Errorf("PublishAsync of ID %s after ID %q: %v", async.ID, "c\x00", asyncErr)
	}
	if t.Failed() {
		return
	}
	got := map[string]string{}
	for _, m := range integration.ConsumeEarliest(t, c, topic, 4) {
		got[m.ID] = string(m.Payload)
	}
	want := map[string]string{"a\nb": "unsafe", quoted.ID: "quoted", "c\x00": "async unsafe", async.ID: "async"}
	for id, p := range want {
		if got[id] != p {
			t.Errorf("ID %q delivered with %q, want %q (all: %q)", id, got[id], p, got)
		}
	}
}

// TestFlushWaitsForMessageWaitingForRoom: a message given to PublishAsync
// before Flush was called counts for Flush also while it still waits for
// room in the window: Flush returns only after its result. In both modes
// (JetStream with a window of 1, core mode with its 4,096); the first
// message's callback holds the window full until Flush waits. Core mode
// runs it on one processor (where the waiting caller and Flush, woken
// together, came in either order), a few rounds.
func TestFlushWaitsForMessageWaitingForRoom(t *testing.T) {
	for _, mode := range []natsadapter.Mode{natsadapter.ModeJetStream, natsadapter.ModeCore} {
		t.Run(mode.String(), func(t *testing.T) {
			c := natstest.Open(t, natsadapter.WithMode(mode), natsadapter.WithMaxInFlight(1))
			topic := integration.UniqueName(t, "flush-room")
			t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := c.Publish(ctx, topic, &messaging.Message{ID: "first"}); err != nil {
				t.Fatal(err)
			}
			window, rounds := 1, 1
			if mode == natsadapter.ModeCore {
				window, rounds = 4096, 10
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			}
			for r := range rounds {
				release := make(chan struct{})
				c.PublishAsync(ctx, topic, &messaging.Message{ID: "m0"}, func(*messaging.Message, error) { <-release })
				for i := 1; i < window; i++ {
					c.PublishAsync(ctx, topic, &messaging.Message{ID: fmt.Sprintf("m%d", i)}, func(*messaging.Message, error) {})
				}
				var late atomic.Int32
				go c.PublishAsync(ctx, topic, &messaging.Message{ID: "late"}, func(_ *messaging.Message, err error) {
					if err != nil {
						t.Errorf("late message: %v", err)
					}
					late.Add(1)
				})
				fault.AwaitGoroutine(t, "(*Client).PublishAsync(", "select")
				flushed := make(chan error, 1)
				go func() { flushed <- c.Flush(ctx) }()
				close(release)
				if err := <-flushed; err != nil {
					t.Fatal(err)
				}
				if n := late.Load(); n != 1 {
					t.Fatalf("round %d: Flush returned with %d results of the message given before it, waiting for room, want 1", r, n)
				}
			}
		})
	}
}

// TestPublishNoMessagesWhileDown: Publish of no messages has nothing to
// send and returns nil at once, also while the connection is down, as on
// the other adapters. It used to wait for the connection up to
// unavailable_timeout and fail with messaging.ErrUnavailable.
func TestPublishNoMessagesWhileDown(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(mode.String(), func(t *testing.T) {
			_, p, c := openProxied(t, 10*time.Second, natsadapter.WithMode(mode))
			cutAndWait(t, c, p)
			begin := time.Now()
			err := c.Publish(t.Context(), integration.UniqueName(t, "none"))
			if took := time.Since(begin); err != nil || took > time.Second {
				t.Fatalf("Publish of no messages while down: %v after %v, want nil at once", err, took.Round(time.Millisecond))
			}
		})
	}
}

// failures keeps the errors of the PublishAsync messages given done.
type failures struct {
	mu   sync.Mutex
	errs []error
}

func (f *failures) done(_ *messaging.Message, err error) {
	if err != nil {
		f.mu.Lock()
		f.errs = append(f.errs, err)
		f.mu.Unlock()
	}
}

// none fails t if a message failed (when: when that would be wrong).
func (f *failures) none(t *testing.T, when string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Fatalf("%s: %d messages failed, the first: %v", when, len(f.errs), f.errs[0])
	}
}
