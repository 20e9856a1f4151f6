package rabbitmqtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// stallProxy forwards TCP connections to a target until stall is called;
// from then on it reads nothing from either side, and forwards nothing:
// the connections stay open, the broker answers nothing, and a client's
// writes fill the socket buffers and then block (a hung node, a network
// that stops acknowledging). fault.Proxy.Silence reads and drops instead,
// so a write through it never blocks.
type stallProxy struct {
	addr    string
	stalled chan struct{} // closed by stall
	once    sync.Once
	done    chan struct{} // closed by close
	close   func()        // closes every connection, once
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: ln.Addr().String(), stalled: make(chan struct{}), done: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(up, c) }()
			go func() { defer wg.Done(); p.pipe(c, up) }()
		}
	}()
	p.close = sync.OnceFunc(func() {
		close(p.done)
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) stall() { p.once.Do(func() { close(p.stalled) }) }

// pipe copies src to dst until either fails or the proxy stalls; stalled,
// it reads nothing more (a chunk read meanwhile is dropped) and waits for
// close, which closes the connections.
func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-p.stalled:
			<-p.done
			return
		default:
		}
		n, err := src.Read(buf)
		select {
		case <-p.stalled:
			<-p.done
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}

// goroutineWith reports whether a goroutine of the test binary has every
// one of parts in its stack.
func goroutineWith(parts ...string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
next:
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		for _, p := range parts {
			if !bytes.Contains(g, []byte(p)) {
				continue next
			}
		}
		return true
	}
	return false
}

// TestCloseWithSettlesBehindStuckWrite: the broker stops reading (see
// stallProxy) while a Publish is inside a write larger than the socket
// buffers; that write holds amqp091's send lock, so every other frame on
// the connection (basic.reject, basic.cancel, basic.nack) waits behind it
// until the connection dies (amqp091's read deadline of three half
// heartbeats). With a handler's failure and prefetched messages to release
// when it stops, Subscription.Close returns within about
// unavailable_timeout (fault.CloseWhileUnreachable's bound: the broker
// answers nothing), and so does Client.Close after it, no settlement left
// running. Settle used to wait for those sends, ignoring its context, and
// amqp091's shutdown of the connection at its read deadline then waited
// for the channel that Settle's send held: Close never returned.
func TestCloseWithSettlesBehindStuckWrite(t *testing.T) {
	direct, c, p, topic, group := stalledClient(t, "stall")
	const n = 10
	msgs := make([]*messaging.Message, n)
	for i := range msgs {
		msgs[i] = &messaging.Message{Payload: []byte(fmt.Sprint(i))}
	}
	// Published by c: its connection has declared the topic, so the
	// burst below goes straight to its write.
	if err := c.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	// One handler holds the first message until released, then fails it
	// (basic.reject, sent at once); the others wait in the prefetch, to be
	// released by the stop (basic.cancel, basic.nack).
	entered, release := make(chan struct{}, n), make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before c closes
	sub, err := c.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error {
		entered <- struct{}{}
		<-release
		return errors.New("fails")
	}, messaging.Group(group), messaging.Concurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	integration.Eventually(t, 10*time.Second, func() error {
		st, err := direct.Inspect(t.Context(), topic)
		if err != nil {
			return err
		}
		for _, g := range st.Groups {
			if b, ok := g.Backlog.Value(); g.Group == group && ok && b == 0 {
				return nil
			}
		}
		return fmt.Errorf("not all delivered yet: %+v", st.Groups)
	})

	p.stall()
	// 16 messages of almost 4 MiB: far more than the socket buffers hold.
	burst := make([]*messaging.Message, 16)
	for i := range burst {
		burst[i] = &messaging.Message{Payload: bytes.Repeat([]byte{'x'}, 4<<20-4096)}
	}
	published := make(chan error, 1)
	pubBegin := time.Now()
	go func() { published <- c.Publish(context.Background(), topic, burst...) }()
	integration.Eventually(t, 10*time.Second, func() error {
		// Parked in an amqp091 connection's socket write, holding its
		// send lock.
		if !goroutineWith("waitWrite", "amqp091-go.(*Connection)") {
			return errors.New("no write stuck on the connection yet")
		}
		return nil
	})

	releaseAll()
	closed := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(closed)
		_ = sub.Close()
	}()
	select {
	case <-closed:
		took := time.Since(begin)
		t.Logf("Subscription.Close with settles behind a stuck write: returned after %v", took.Round(time.Millisecond))
		if limit := fault.AdminUnavailableTimeout + fault.AdminMargin; took > limit {
			t.Errorf("Subscription.Close with settles behind a stuck write took %v with unavailable_timeout=1s, want within %v", took.Round(time.Millisecond), limit)
		}
	case <-time.After(fault.AdminGiveUp):
		t.Fatalf("Subscription.Close with settles behind a stuck write had not returned after %v", fault.AdminGiveUp)
	}
	// The Publish waited through the silence that ended the connection,
	// whoever noticed it first (its write's watchdog, the settling): it
	// fails with ErrUnavailable then, not resent to wait up to another
	// unavailable_timeout for a connection.
	select {
	case err := <-published:
		t.Logf("Publish of the burst: %v after %v", err, time.Since(pubBegin).Round(time.Millisecond))
		if !errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("Publish of the burst to a stalled broker: %v, want messaging.ErrUnavailable", err)
		} else if strings.Contains(err.Error(), "no connection within") {
			t.Errorf("Publish of the burst was resent after the connection was given up, and waited for another: %v", err)
		}
	case <-time.After(fault.AdminGiveUp):
		t.Errorf("Publish of the burst to a stalled broker had not returned after %v", fault.AdminGiveUp)
	}
	fault.CloseWhileUnreachable(t, c)
	// What Settle stopped waiting for ended with the connection.
	integration.Eventually(t, 5*time.Second, func() error {
		if goroutineWith("rabbitmq.(*receiver).Settle.func") {
			return errors.New("a settlement of the closed client still runs")
		}
		return nil
	})
}

// TestPublishStuckWriteOnStalledBroker: the broker stops reading (see
// stallProxy) and a Publish writes more than the socket buffers hold, no
// other call on the client noticing the silence. Its write never ends by
// itself, and amqp091's own shutdown of the connection (at its read
// deadline, three heartbeats) waits for the locks that write holds, so
// the socket is never closed. Publish fails with messaging.ErrUnavailable
// within about the unavailable timeout all the same (the contract of
// WithUnavailableTimeout for a broker that answers nothing), and
// Client.Close after it returns within the timeout too. Publish used to
// stay in its write for good.
func TestPublishStuckWriteOnStalledBroker(t *testing.T) {
	_, c, p, topic, _ := stalledClient(t, "stuckpub")
	// c's connection declares the topic and opens its publish channel:
	// the burst below goes straight to its write.
	if err := c.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("before")}); err != nil {
		t.Fatal(err)
	}

	p.stall()
	// 16 messages of almost 4 MiB: far more than the socket buffers hold.
	burst := make([]*messaging.Message, 16)
	for i := range burst {
		burst[i] = &messaging.Message{Payload: bytes.Repeat([]byte{'x'}, 4<<20-4096)}
	}
	published := make(chan error, 1)
	begin := time.Now()
	go func() { published <- c.Publish(context.Background(), topic, burst...) }()
	const limit = 5 * time.Second // unavailable_timeout=1s
	select {
	case err := <-published:
		took := time.Since(begin)
		t.Logf("Publish to a stalled broker: %v after %v", err, took.Round(time.Millisecond))
		if !errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("Publish to a stalled broker: %v, want messaging.ErrUnavailable", err)
		}
		if took > limit {
			t.Errorf("Publish to a stalled broker returned after %v with unavailable_timeout=1s, want within %v", took.Round(time.Millisecond), limit)
		}
	case <-time.After(limit):
		stuck := goroutineWith("waitWrite", "amqp091-go.(*Connection)")
		t.Errorf("Publish to a stalled broker had not returned after %v with unavailable_timeout=1s (stuck in a socket write: %v)", limit, stuck)
	}
	fault.CloseWhileUnreachable(t, c)
}

// stalledClient returns a client reaching the broker through a stallProxy,
// with unavailable_timeout=1s, another reaching it directly, and a topic
// with group provisioned (deleted at the end), named after prefix.
func stalledClient(t *testing.T, prefix string) (direct, c *rabbitmq.Client, p *stallProxy, topic, group string) {
	t.Helper()
	u, err := url.Parse(rabbitmqtest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	direct = rabbitmqtest.Open(t, u.String())
	p = newStallProxy(t, u.Host)
	u.Host = p.addr
	c = rabbitmqtest.Open(t, u.String()+"?unavailable_timeout=1s")
	// Before c closes: a write stuck for good ends with the socket.
	t.Cleanup(p.close)
	topic, group = integration.UniqueName(t, prefix), integration.UniqueName(t, "g")
	if err := direct.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	deleteAtEnd(t, direct, topic)
	return direct, c, p, topic, group
}
