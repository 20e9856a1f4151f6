// Package fault is the fault-injection kit of the adapters' fault tests: a
// TCP proxy that cuts, delays, silences and refuses connections between a client and
// a broker, and private brokers (nats-server, redis-server, kfake, RabbitMQ
// nodes) on free loopback ports, which a test kills with SIGKILL and
// restarts. Nothing here touches the shared brokers.
//
// A test puts a Proxy in front of a private broker, gives the client the
// proxy's address, and cuts:
//
//	srv := natstest.StartServer(t)
//	p := fault.NewProxy(t, srv.Addr())
//	c := natstest.OpenURL(t, "nats://"+p.Addr())
//	...
//	p.CutFor(3 * time.Second) // every connection closed, new ones refused
package fault

import (
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago and that
// FreePort has not returned before in this process: the kernel may hand
// out a port just closed again, and two private brokers of one test given
// the same port collided (a RabbitMQ node of a three-node cluster failed
// to boot: dist_port_already_used).
func FreePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		givenMu.Lock()
		seen := given[port]
		given[port] = true
		givenMu.Unlock()
		if !seen {
			return port
		}
	}
}

// given holds the ports FreePort returned.
var (
	givenMu sync.Mutex
	given   = map[int]bool{}
)

// Proxy forwards TCP connections from its own loopback address to a target
// address, and lets a test break them: Cut closes every connection and
// refuses new ones until Restore, Refuse only refuses new ones, Silence
// drops every byte (a broker that never answers), SetDelay
// and SetLatency add latency. It is safe for concurrent use; the test's cleanup closes it.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener // nil while refusing
	conns    map[net.Conn]struct{}
	delay    time.Duration
	latency  time.Duration
	silent   bool
	closed   bool
	accepted int
	cuts     int
	wg       sync.WaitGroup
}

// NewProxy starts a proxy to target ("host:port") on a free loopback port.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return NewProxyAt(t, target, 0)
}

// NewProxyAt is NewProxy listening on a given loopback port (0: any).
func NewProxyAt(t testing.TB, target string, port int) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's "127.0.0.1:port": what clients connect to.
func (p *Proxy) Addr() string { return p.addr }

// Port is the proxy's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Accepted is how many client connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Conns is how many client connections the proxy is forwarding now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2 // each with its upstream connection
}

// SetDelay delays every chunk of bytes forwarded in either direction by d
// (0: none), on existing and new connections.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// SetLatency delays every chunk of bytes forwarded in either direction by d
// from when the proxy read it (0: none), on existing and new connections,
// forwarding the chunks read meanwhile without waiting: a link with latency
// d, each answer as late as the one before. (SetDelay instead holds the
// next chunk until the one before was forwarded: requests queued behind
// each other wait a delay each.)
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Silence makes the broker behind the proxy one that takes connections and
// requests and never answers: connections stay open and new ones are
// accepted, but every byte read from either side is dropped (the broker
// sees no request, the client no answer; not even a refused dial or a reset
// tells it something is wrong). Restore ends it; a connection that was open
// meanwhile has lost bytes and is broken for its protocol, so clients see
// errors on it and reconnect.
func (p *Proxy) Silence() {
	p.mu.Lock()
	p.silent = true
	p.mu.Unlock()
}

// Refuse stops accepting: new connections are refused (the port is
// closed), existing ones keep working. Restore undoes it.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
}

// Cut is a network cut: every connection through the proxy is closed (both
// sides see it end) and new ones are refused until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts++
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
}

// CutFor cuts, waits d (the outage's length is the subject), and restores.
func (p *Proxy) CutFor(d time.Duration) {
	p.Cut()
	time.Sleep(d)
	p.Restore()
}

// Restore accepts connections again on the same port after Cut or Refuse,
// and forwards again after Silence.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = false
	if p.ln != nil || p.closed {
		return
	}
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond) // the port may linger a moment after the close
	}
	p.t.Errorf("fault proxy: listening again on %s: %v", p.addr, err)
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

// serve accepts on ln until it is closed; p.mu is held or ln is new.
func (p *Proxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(ln, c)
			}()
		}
	}()
}

// forward connects c to the target and copies both ways until either side
// ends or the proxy cuts them.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln { // cut meanwhile
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.accepted++
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(up, c); done <- struct{}{} }()
	go func() { p.copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	var late chan lateChunk // SetLatency's chunks, in order, once it was set
	defer func() {
		if late != nil {
			close(late)
		}
	}()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d, latency, silent := p.delay, p.latency, p.silent
			p.mu.Unlock()
			if silent {
				continue // dropped: a broker that never answers is the subject
			}
			if d > 0 {
				time.Sleep(d) // injected latency is the subject
			}
			if latency > 0 && late == nil {
				late = make(chan lateChunk, 1024)
				p.wg.Add(1) // within forward's: never from zero
				go p.writeLate(dst, late)
			}
			if late != nil {
				late <- lateChunk{b: slices.Clone(buf[:n]), due: time.Now().Add(latency)}
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, a reset or a cut: forward closes both ends
		}
	}
}

// lateChunk is a chunk SetLatency holds until due.
type lateChunk struct {
	b   []byte
	due time.Time
}

// writeLate writes the chunks of late to dst, each when due, until late is
// closed; after a failed write it drops the rest.
func (p *Proxy) writeLate(dst net.Conn, late <-chan lateChunk) {
	defer p.wg.Done()
	failed := false
	for c := range late {
		if failed {
			continue
		}
		time.Sleep(time.Until(c.due)) // injected latency is the subject
		if _, err := dst.Write(c.b); err != nil {
			failed = true
			_ = dst.Close() // the reader's end follows
		}
	}
}
