package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
)

// hostDialer dials the nodes of a multi-host URL
// (amqp://user:password@host1:5672,host2:5672/vhost) in turn: each dial
// starts with the host after the one connected last, so that a redial after
// a lost connection tries the other nodes first, and moves on to the next
// host when one fails. With one host it is a plain dial.
type hostDialer struct {
	addrs   []string      // amqp091 URLs, one host each
	cfgs    []amqp.Config // each with its host's guarded Dial
	unavail time.Duration // a handshake the broker stops answering for that long is given up; 0: never

	mu     sync.Mutex
	next   int
	guards map[*amqp.Connection]*frameGuard // dialled, not yet taken by guardOf
}

// newHostDialer splits plain (a URL without query) into one address per
// host of its comma-separated host list.
func newHostDialer(plain *url.URL, ac amqp.Config) (*hostDialer, error) {
	d := &hostDialer{}
	for _, h := range strings.Split(plain.Host, ",") {
		h = strings.TrimSpace(h)
		if h == "" || strings.HasPrefix(h, ":") {
			return nil, errors.New("rabbitmq: empty host in the host list")
		}
		one := *plain
		one.Host = h
		addr, cfg, err := guardedDial(one.String(), ac)
		if err != nil {
			return nil, err
		}
		d.addrs = append(d.addrs, addr)
		d.cfgs = append(d.cfgs, cfg)
	}
	return d, nil
}

// dial connects to the first host that answers, trying each once; it
// returns the last host's error when none does.
func (d *hostDialer) dial(ctx context.Context) (*amqp.Connection, error) {
	d.mu.Lock()
	start := d.next
	d.mu.Unlock()
	var last error
	for k := range d.addrs {
		i := (start + k) % len(d.addrs)
		cfg, clock := d.cfgs[i], newAnswerClock()
		guarded := cfg.Dial
		var guard *frameGuard // read once the dial returned the connection
		cfg.Dial = func(network, addr string) (net.Conn, error) {
			c, err := guarded(network, addr)
			if g, ok := c.(*frameGuard); ok {
				clock.stamp()   // connected (and TLS's handshake answered)
				g.clock = clock // before amqp091 reads from it
				guard = g
			}
			return c, err
		}
		conn, err := d.dialOne(ctx, d.addrs[i], cfg, clock)
		if err == nil {
			d.mu.Lock()
			d.next = (i + 1) % len(d.addrs)
			if guard != nil {
				if d.guards == nil {
					d.guards = map[*amqp.Connection]*frameGuard{}
				}
				d.guards[conn] = guard
			}
			d.mu.Unlock()
			return conn, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if len(d.addrs) > 1 {
		// The hosts, never the credentials (amqp091 errors show no URL).
		return nil, fmt.Errorf("rabbitmq: none of the %d hosts answered, the last: %w", len(d.addrs), last)
	}
	return nil, last
}

// guardOf returns the frameGuard of conn, a connection dial returned (nil
// for any other): its clock tells when the broker last sent anything on
// conn, and it can cut the socket. It forgets conn: the connector asks
// once per connection.
func (d *hostDialer) guardOf(conn *amqp.Connection) *frameGuard {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guards[conn]
	delete(d.guards, conn)
	return g
}

// errSilentHandshake: the broker stopped answering during the handshake.
var errSilentHandshake = errors.New("rabbitmq: silent handshake")

// dialOne dials addr, giving up when ctx ends or when the broker has sent
// nothing (clock) for the unavailable timeout: a broker that takes the
// connection and never answers (see blockWatch.boundAnswers) would
// otherwise hold the dial for amqp091's handshake timeout (30s), and a
// redial after it came back behind a connection that lost the handshake's
// first bytes.
func (d *hostDialer) dialOne(ctx context.Context, addr string, cfg amqp.Config, clock *answerClock) (*amqp.Connection, error) {
	if d.unavail <= 0 {
		return dialContext(ctx, addr, cfg)
	}
	attempt, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		if awaitSilence(clock.last, time.Now(), d.unavail, attempt.Done(), nil) {
			cancel(errSilentHandshake)
		}
	}()
	conn, err := dialContext(attempt, addr, cfg)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(attempt), errSilentHandshake) {
		return nil, fmt.Errorf("rabbitmq: %w: the broker answered nothing for %v while connecting", messaging.ErrUnavailable, d.unavail)
	}
	return conn, err
}
