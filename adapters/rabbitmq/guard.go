package rabbitmq

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// hdrUndecodable replaces the header table of a delivery amqp091-go could
// not decode; its value says why. The consumer gives such a message up
// (dead-letters it with WithDeadLetterExchange, else drops it with a log
// line) instead of receiving it again and again.
const hdrUndecodable = "x-msgkit-undecodable"

// amqp091-go's decoding limits (read.go): more entries in one table or
// array, or deeper nesting, fail the whole connection with ErrSyntax.
const (
	decodeMaxEntries = 8192
	decodeMaxDepth   = 32
)

// guardedDial makes the connections of addr (amqp:// or amqps://) pass
// through a frameGuard. TLS is done here, below the guard, so an amqps URL
// is handed to amqp091 as amqp:// with the same host and port.
func guardedDial(addr string, cfg amqp.Config) (string, amqp.Config, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", cfg, err
	}
	dial := cfg.Dial
	if dial == nil {
		dial = amqp.DefaultDial(30 * time.Second)
	}
	var tlsConf *tls.Config
	if u.Scheme == "amqps" {
		tlsConf = cfg.TLSClientConfig
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		} else {
			tlsConf = tlsConf.Clone()
		}
		if tlsConf.ServerName == "" {
			tlsConf.ServerName = u.Hostname()
		}
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "5671")
		}
		u.Scheme = "amqp"
	}
	cfg.Dial = func(network, a string) (net.Conn, error) {
		conn, err := dial(network, a)
		if err != nil {
			return nil, err
		}
		raw := conn
		if tlsConf != nil {
			tc := tls.Client(conn, tlsConf)
			if err := tc.Handshake(); err != nil {
				_ = conn.Close()
				return nil, err
			}
			conn = tc
		}
		return &frameGuard{Conn: conn, raw: raw, r: bufio.NewReaderSize(conn, 64<<10)}, nil
	}
	return u.String(), cfg, nil
}

// frameGuard reads AMQP frames from the broker and rewrites content header
// frames whose header table amqp091-go would refuse (more than 8192
// entries in a table or array, nesting deeper than 32, an unknown field
// type): the table becomes {x-msgkit-undecodable: reason}. Without it, such
// a message, published by any client, makes every consumer's connection
// drop at each delivery, and the queue never moves past it.
//
// It also follows the writes (see writing) and can close the socket under
// amqp091 (see cut).
type frameGuard struct {
	net.Conn
	raw     net.Conn     // the socket below TLS (Conn itself without TLS)
	wrote   atomic.Int64 // see writing
	r       *bufio.Reader
	started bool
	buf     []byte // reused for frames passed on unchanged
	out     []byte
	err     error
	clock   *answerClock // set by hostDialer before the first read; nil: none
}

func (g *frameGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		g.out, g.err = g.next()
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	if g.clock != nil {
		g.clock.stamp()
	}
	return n, nil
}

// writeChunk is the most Write hands the socket at once: a write's
// progress is seen at least that often (see writing).
const writeChunk = 32 << 10

// Write writes p in chunks of writeChunk, recording the progress.
// amqp091 writes under its send lock, one write at a time.
func (g *frameGuard) Write(p []byte) (int, error) {
	defer g.wrote.Store(0)
	n := 0
	for n < len(p) {
		g.wrote.Store(time.Now().UnixNano())
		k, err := g.Conn.Write(p[n:min(len(p), n+writeChunk)])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// writing returns when the write under way began or last made progress
// (a chunk began); zero when no write is under way.
func (g *frameGuard) writing() time.Time {
	if ns := g.wrote.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// cut closes the socket under amqp091 (below TLS, which a write in
// progress would have to finish first), without amqp091's locks: a write
// or read stuck in it fails at once. A write blocked on a broker that
// reads nothing holds amqp091's send lock and its channel's lock, which
// amqp091's own close (Connection.CloseDeadline, or its shutdown at the
// heartbeat's read deadline) waits for before closing the socket; amqp091
// then notices the failed socket and shuts the connection down.
func (g *frameGuard) cut() { _ = g.raw.Close() }

// answerClock records when the broker last sent anything on a connection
// (a frame, a heartbeat): the calls waiting for its answers count their
// unavailable timeout from it (see blockWatch.boundAnswers).
type answerClock struct{ ns atomic.Int64 }

func newAnswerClock() *answerClock {
	c := &answerClock{}
	c.stamp()
	return c
}

func (c *answerClock) stamp() { c.ns.Store(time.Now().UnixNano()) }

// last is when the broker last sent anything.
func (c *answerClock) last() time.Time { return time.Unix(0, c.ns.Load()) }

// awaitSilence waits until last (when the broker last sent anything) is
// limit ago and at least limit after from, and returns true; it returns
// false as soon as end1 or end2 is closed (a nil one never is).
func awaitSilence(last func() time.Time, from time.Time, limit time.Duration, end1, end2 <-chan struct{}) bool {
	s := newSilenceTimer(last, from, limit)
	defer s.stop()
	for {
		select {
		case <-s.c():
			if s.expired() {
				return true
			}
			// an answer meanwhile: its own timeout
		case <-end1:
			return false
		case <-end2:
			return false
		}
	}
}

// next returns the next frame, rewritten if need be. A protocol header
// (the server refusing our version) passes as it is.
func (g *frameGuard) next() ([]byte, error) {
	if !g.started {
		g.started = true
		if b, err := g.r.Peek(4); err == nil && string(b) == "AMQP" {
			rest, err := io.ReadAll(g.r)
			return rest, err
		}
	}
	var h [7]byte
	if _, err := io.ReadFull(g.r, h[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(h[3:])
	if n := 7 + int(size) + 1; cap(g.buf) < n {
		g.buf = make([]byte, n)
	}
	frame := g.buf[:7+int(size)+1]
	copy(frame, h[:])
	if _, err := io.ReadFull(g.r, frame[7:]); err != nil {
		return nil, err
	}
	if h[0] != 2 { // only content header frames carry message headers
		return frame, nil
	}
	return rewriteHeaderFrame(frame), nil
}

// hdrStreamOffset is the header the broker adds to stream deliveries.
const hdrStreamOffset = "x-stream-offset"

// rewriteHeaderFrame replaces an undecodable header table in a content
// header frame (type 2): class, weight, body size, property flags, then the
// properties, of which headers is the third (after content type and
// encoding, both short strings). The new table keeps the broker's
// x-stream-offset entry when it can be found (it comes before anything
// unreadable in the table, or the table is only too large or too deep),
// so that a stream read knows the message's place and goes past it.
func rewriteHeaderFrame(frame []byte) []byte {
	payload := frame[7 : len(frame)-1]
	if len(payload) < 14 {
		return frame
	}
	flags := binary.BigEndian.Uint16(payload[12:14])
	const (
		flagContentType     = 0x8000
		flagContentEncoding = 0x4000
		flagHeaders         = 0x2000
	)
	if flags&flagHeaders == 0 {
		return frame
	}
	off := 14
	for _, f := range []uint16{flagContentType, flagContentEncoding} {
		if flags&f != 0 {
			if off >= len(payload) {
				return frame
			}
			off += 1 + int(payload[off])
		}
	}
	if off+4 > len(payload) {
		return frame
	}
	n := int(binary.BigEndian.Uint32(payload[off:]))
	if n < 0 || off+4+n > len(payload) {
		return frame
	}
	err := checkTable(payload[off+4:off+4+n], 0)
	if err == nil {
		return frame
	}
	reason := "header table amqp091-go cannot decode: " + err.Error()
	var table []byte
	if e, ok := findIntEntry(payload[off+4:off+4+n], hdrStreamOffset); ok {
		table = append(table, e...) // Read's position (see logReader.Next)
	}
	table = append(table, byte(len(hdrUndecodable)))
	table = append(table, hdrUndecodable...)
	table = append(table, 'S')
	table = binary.BigEndian.AppendUint32(table, uint32(len(reason)))
	table = append(table, reason...)
	out := make([]byte, 0, len(frame)-n+len(table))
	out = append(out, frame[:7+off]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(table)))
	out = append(out, table...)
	out = append(out, payload[off+4+n:]...)
	out = append(out, 0xCE)
	binary.BigEndian.PutUint32(out[3:7], uint32(len(out)-8))
	return out
}

var (
	errTruncated   = errors.New("rabbitmq: truncated")
	errUndecodable = errors.New("rabbitmq: message cannot be decoded")
)

// checkTable checks an encoded table (without its length) against
// amqp091-go's decoder.
func checkTable(b []byte, depth int) error {
	if depth > decodeMaxDepth {
		return fmt.Errorf("rabbitmq: nested deeper than %d", decodeMaxDepth)
	}
	entries := 0
	for len(b) > 0 {
		k := int(b[0])
		if 1+k > len(b) {
			return errTruncated
		}
		b = b[1+k:]
		var err error
		if b, err = checkField(b, depth); err != nil {
			return err
		}
		if entries++; entries > decodeMaxEntries {
			return fmt.Errorf("rabbitmq: more than %d entries", decodeMaxEntries)
		}
	}
	return nil
}

// findIntEntry returns the encoded entry (key, type, value) of the first
// top-level entry named key in the encoded table b (without its length)
// whose value is an integer, walking the entries up to the end or the
// first one it cannot skip (an unknown field type, a truncation). Nested
// tables and arrays are skipped by their length, not read, so a table too
// large or too deep for amqp091-go is walked in full.
func findIntEntry(b []byte, key string) ([]byte, bool) {
	for len(b) > 0 {
		start := b
		k := int(b[0])
		if 1+k >= len(b) {
			return nil, false
		}
		name, typ := string(b[1:1+k]), b[1+k]
		rest, err := skipField(b[1+k:])
		if err != nil {
			return nil, false
		}
		if name == key && strings.IndexByte("bBsuIil", typ) >= 0 {
			return start[:len(start)-len(rest)], true
		}
		b = rest
	}
	return nil, false
}

// skipField returns what follows the field value at the start of b,
// without checking inside tables and arrays.
func skipField(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errTruncated
	}
	typ, b := b[0], b[1:]
	if n, ok := fixedFieldSize[typ]; ok {
		if n > len(b) {
			return nil, errTruncated
		}
		return b[n:], nil
	}
	if typ != 'S' && typ != 'x' && typ != 'A' && typ != 'F' {
		return nil, fmt.Errorf("rabbitmq: unknown field type %q", typ)
	}
	if len(b) < 4 {
		return nil, errTruncated
	}
	n := binary.BigEndian.Uint32(b)
	if n > 1<<31-1 || int(n) > len(b)-4 {
		return nil, errTruncated
	}
	return b[4+n:], nil
}

// fixedFieldSize is the size of the field types of fixed size.
var fixedFieldSize = map[byte]int{'t': 1, 'B': 1, 'b': 1, 's': 2, 'u': 2, 'I': 4, 'i': 4, 'f': 4, 'l': 8, 'd': 8, 'T': 8, 'D': 5, 'V': 0}

// checkField checks one field value and returns what follows it.
func checkField(b []byte, depth int) ([]byte, error) {
	rest, err := skipField(b)
	if err != nil {
		return nil, err
	}
	typ := b[0]
	if typ != 'F' && typ != 'A' {
		return rest, nil
	}
	body := b[5 : len(b)-len(rest)] // after the type and the length
	switch typ {
	case 'F':
		return rest, checkTable(body, depth+1)
	case 'A':
		if depth+1 > decodeMaxDepth {
			return nil, fmt.Errorf("rabbitmq: nested deeper than %d", decodeMaxDepth)
		}
		for elems := 0; len(body) > 0; elems++ {
			if elems >= decodeMaxEntries {
				return nil, fmt.Errorf("rabbitmq: an array of more than %d elements", decodeMaxEntries)
			}
			if body, err = checkField(body, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return rest, nil
}

// ConnectionState returns the TLS state of a TLS connection (amqp091's
// Connection.ConnectionState asks the transport for it).
func (g *frameGuard) ConnectionState() tls.ConnectionState {
	if tc, ok := g.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
