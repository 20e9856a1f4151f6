package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// hostDialer dials the nodes of a multi-host URL
// (amqp://user:password@host1:5672,host2:5672/vhost) in turn: each dial
// starts with the host after the one connected last, so that a redial after
// a lost connection tries the other nodes first, and moves on to the next
// host when one fails. With one host it is a plain dial.
type hostDialer struct {
	addrs []string      // amqp091 URLs, one host each
	cfgs  []amqp.Config // each with its host's guarded Dial

	mu   sync.Mutex
	next int
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
		conn, err := dialContext(ctx, d.addrs[i], d.cfgs[i])
		if err == nil {
			d.mu.Lock()
			d.next = (i + 1) % len(d.addrs)
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
