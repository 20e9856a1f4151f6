package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/asyncpub"
)

// TestCoalescedRequestOutlivesItsAttempt: a coalesced request whose
// caller gave up on it (its first message's deadline passed while a
// pipeline held it) may still be looked at by the pipeline, its unwanted
// check called, while the caller sends the next attempt. The check must
// work then: it used to call the variable the caller had just cleared (a
// data race, and a nil function call). The test plays the coalescing
// goroutine, so it decides when the pipeline looks at each request; no
// server is reached.
func TestCoalescedRequestOutlivesItsAttempt(t *testing.T) {
	const timeout = 300 * time.Millisecond
	rc := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	c, err := New(rc, WithCoalescing(1), WithUnavailableTimeout(timeout), WithCloseClient(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_, take := playCoalescer(t, c)

	results := make(chan error, 3)
	done := func(_ *messaging.Message, err error) { results <- err }
	ctx := context.Background()
	publish := func() {
		m := messaging.NewMessage(nil)
		m.Key = "k"
		c.PublishAsync(ctx, "t", m, done)
	}
	// m0 holds the one lane while m1 and, a third of the timeout later,
	// m2 queue behind it: one batch whose messages' deadlines differ.
	publish()
	r0 := take("m0")
	publish()
	time.Sleep(timeout / 3) // the queue times differ: the subject, not a wait for an event
	publish()
	close(r0.done) // m0 acknowledged
	r1 := take("the batch of m1 and m2")
	if len(r1.xadds) != 2 || r1.unwanted == nil {
		t.Fatalf("first attempt: %d messages, unwanted set %v; want 2 and true", len(r1.xadds), r1.unwanted != nil)
	}
	// Held until m1's deadline passes: its caller gives up on r1 and
	// sends m2 again, alone.
	r2 := take("m2's second attempt")
	if len(r2.xadds) != 1 {
		t.Fatalf("second attempt: %d messages, want 1", len(r2.xadds))
	}
	// The pipeline only now looks at r1.
	for j := range r1.xadds {
		if err := r1.unwanted(j); err != nil {
			t.Errorf("r1.unwanted(%d) = %v, want nil: the message's ctx is live and the client open", j, err)
		}
	}
	close(r1.done)
	close(r2.done)
	var got []error
	for range 3 {
		got = append(got, <-results)
	}
	if got[0] != nil || !errors.Is(got[1], messaging.ErrUnavailable) || got[2] != nil {
		t.Errorf("results %v, want nil, ErrUnavailable, nil", got)
	}
}

// flakyClient returns a go-redis client (with go-redis's own retries of a
// failed call, up to retries; -1: none) of a fake server on a loopback port whose first connection breaks when it
// gets an XADD, which it neither applies nor answers: at once, or, when
// hold is not nil, once hold is closed, having closed written (when not
// nil) first. Its later connections serve XADDs (serveXAdd, which sends
// their payloads on sent).
func flakyClient(t *testing.T, retries int, hold <-chan struct{}, written chan<- struct{}, sent chan<- string) *goredis.Client {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for n := 0; ; n++ {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			if n == 0 {
				go breakAtXAdd(conn, hold, written)
			} else {
				go serveXAdd(conn, sent)
			}
		}
	}()
	return goredis.NewClient(&goredis.Options{Addr: l.Addr().String(), Protocol: 2, DisableIdentity: true, MaxRetries: retries})
}

// breakAtXAdd closes conn when it gets an XADD (see flakyClient), and
// fails any other command.
func breakAtXAdd(conn net.Conn, hold <-chan struct{}, written chan<- struct{}) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		if strings.EqualFold(args[0], "xadd") {
			if written != nil {
				close(written)
			}
			if hold != nil {
				<-hold
			}
			return
		}
		if _, err := io.WriteString(conn, "-ERR unknown command\r\n"); err != nil {
			return
		}
	}
}

// TestCoalescedDropKeepsOthersRetrying: when a pipeline fails, unsent, a
// message of a PublishAsync batch no longer wanted (its ctx ended) and
// loses its connection for the others, the others are retried within
// their unavailable timeout, as without the dropped message. They used to
// fail at once with the connection's error: the dropped message's error
// made the attempt's failure look like one that retrying cannot mend. The
// test plays the coalescing goroutine, running the real pipeline (exec):
// the first connection breaks, the next one serves.
func TestCoalescedDropKeepsOthersRetrying(t *testing.T) {
	sent := make(chan string, 2)
	c, err := New(flakyClient(t, -1, nil, nil, sent), WithCoalescing(1), WithUnavailableTimeout(time.Minute), WithCloseClient(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	co, take := playCoalescer(t, c)
	timeout := time.After(10 * time.Second)

	results := make(chan string, 3)
	done := func(m *messaging.Message, err error) { results <- fmt.Sprintf("%s: %v", m.Payload, err) }
	publish := func(ctx context.Context, payload string) {
		m := messaging.NewMessage([]byte(payload))
		m.Key = "k" // one lane
		c.PublishAsync(ctx, "t", m, done)
	}
	// m0 holds the lane while a and b queue behind it: one batch.
	publish(t.Context(), "m0")
	r0 := take("m0")
	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	publish(ctxA, "a")
	publish(t.Context(), "b")
	close(r0.done) // m0 acknowledged (unsent: the test's pipeline)
	if got := <-results; got != "m0: <nil>" {
		t.Fatalf("m0: %s", got)
	}
	r1 := take("the batch of a and b")
	if len(r1.xadds) != 2 {
		t.Fatalf("the batch has %d messages, want 2 (a and b)", len(r1.xadds))
	}
	cancelA() // a is dropped when the pipeline takes the batch; b's connection breaks
	co.exec([]*pubReq{r1})
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case r := <-co.reqs: // a retry
			co.exec([]*pubReq{r})
		case res := <-results:
			got[res] = true
		case <-timeout:
			t.Fatalf("results %v within 10s, want a's and b's", got)
		}
	}
	want := map[string]bool{"a: redis: messaging: publish to t: queued: context canceled": true, "b: <nil>": true}
	if !maps.Equal(got, want) {
		t.Errorf("results %q, want %q (b retried, a failed unsent: see TestCoalescedRetryDropsUnwanted)", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	close(sent)
	var payloads []string
	for p := range sent {
		payloads = append(payloads, p)
	}
	if !slices.Equal(payloads, []string{"b"}) {
		t.Errorf("sent %q, want [b]", payloads)
	}
}

// TestCoalescedRetryDropsUnwanted: a PublishAsync message whose attempt
// failed (its connection broke) is sent again; if by then its ctx has
// ended, or the client's Close has begun, it fails with ctx's error
// (messaging.ErrClosed) without being sent, as it would have on its first
// attempt (see dropQueued). The retries used to send it anyway. The test
// plays the coalescing goroutine, running the real pipeline (exec) for
// each request, so it decides when the first attempt fails: its
// connection breaks, unanswered, once the message's ctx has ended or Close
// has begun; the next connection records what is sent.
func TestCoalescedRetryDropsUnwanted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		what    string
		closing bool // Close begins, rather than the message's ctx ending
		want    error
	}{
		{name: "ctx ended", what: "its ctx ended", want: context.Canceled},
		{name: "client closing", what: "Close began", closing: true, want: messaging.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			written, hold := make(chan struct{}), make(chan struct{})
			sent := make(chan string, 1)
			rc := flakyClient(t, -1, hold, written, sent)
			c, err := New(rc, WithCoalescing(1), WithUnavailableTimeout(time.Minute), WithCloseClient(true))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			co, take := playCoalescer(t, c)
			timeout := time.After(10 * time.Second)

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			results := make(chan error, 1)
			c.PublishAsync(ctx, "t", messaging.NewMessage([]byte("unwanted")), func(_ *messaging.Message, err error) { results <- err })
			r1 := take("the first attempt")
			go co.exec([]*pubReq{r1}) // the message is live: it is written
			select {
			case <-written:
			case <-timeout:
				t.Fatal("the first attempt was not written within 10s")
			}
			closed := make(chan error, 1)
			if tc.closing {
				go func() { closed <- c.Close() }()
				select {
				case <-asyncpub.Closing(r1.ctx): // Close has begun
				case <-timeout:
					t.Fatal("Close did not begin within 10s")
				}
			} else {
				cancel()
			}
			close(hold) // the first attempt fails: its connection breaks, unanswered
			retries := 0
			for got := false; !got; {
				select {
				case r := <-co.reqs: // a retry
					retries++
					co.exec([]*pubReq{r})
				case err = <-results:
					got = true
				case <-timeout:
					t.Fatal("no result within 10s")
				}
			}
			select {
			case p := <-sent:
				t.Errorf("sent %q on a retry (%d retries; result %v), although %s before it: want it failed unsent", p, retries, err, tc.what)
			default:
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("result %v, want an error wrapping %v", err, tc.want)
			}
			if tc.closing {
				select {
				case err := <-closed:
					if err != nil {
						t.Errorf("Close: %v", err)
					}
				case <-timeout:
					t.Fatal("Close did not return within 10s")
				}
			}
		})
	}
}

// TestCoalescedPipelineEndsWhenItsCallersLeft: a coalesced pipeline whose
// callers have all stopped waiting (their ctx ended) ends: go-redis's own
// retry of it (its connection broke) does not send it again after Publish
// returned ctx's error. It used to: the pipeline's context ended only at
// its callers' deadlines. The first connection breaks, unanswered and
// unapplied, once Publish has returned; the next one records what is sent,
// there a later Publish's message, which the one coalescing goroutine takes
// once the first pipeline has ended.
func TestCoalescedPipelineEndsWhenItsCallersLeft(t *testing.T) {
	written, hold := make(chan struct{}), make(chan struct{})
	sent := make(chan string, 2)
	c, err := New(flakyClient(t, 3, hold, written, sent), WithCoalescing(1), WithUnavailableTimeout(time.Minute), WithCloseClient(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	published := make(chan error, 1)
	go func() { published <- c.Publish(ctx, "t", messaging.NewMessage([]byte("given up"))) }()
	select {
	case <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline was not written within 10s")
	}
	cancel()
	if err := <-published; !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish = %v, want ctx's error", err)
	}
	close(hold) // the connection breaks: go-redis may retry the pipeline
	next, cancelNext := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelNext()
	if err := c.Publish(next, "t", messaging.NewMessage([]byte("next"))); err != nil {
		t.Fatalf("the next Publish: %v", err)
	}
	close(sent)
	var payloads []string
	for p := range sent {
		payloads = append(payloads, p)
	}
	if !slices.Equal(payloads, []string{"next"}) {
		t.Errorf("sent %q, want [next]: the message whose Publish returned ctx's error was sent after that", payloads)
	}
}

// playCoalescer makes the test c's coalescing goroutine: it stops c's own
// and returns the coalescer that gets c's requests, which the test takes
// with take (failing t when none comes within 10s) and runs with exec.
func playCoalescer(t *testing.T, c *Client) (co *coalescer, take func(what string) *pubReq) {
	t.Helper()
	c.co.close()
	co = &coalescer{c: c, reqs: make(chan *pubReq), stop: make(chan struct{})}
	c.co = co
	take = func(what string) *pubReq {
		t.Helper()
		select {
		case r := <-co.reqs:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no request for %s within 10s", what)
			return nil
		}
	}
	return co, take
}
