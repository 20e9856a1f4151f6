package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/msgkit/messaging"

	// Every adapter of the module registers its URL scheme.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

// noBroker is the usage error of a command run without a broker URL.
const noBroker = `no broker: pass --url URL or set MESSAGING_URL, e.g.
  --url nats://127.0.0.1:4222
  --url redis://127.0.0.1:6379
  --url kafka://127.0.0.1:9092
  --url amqp://guest:guest@127.0.0.1:5672/
  --url mem://   (in-process: lives only as long as this command)
(msgctl demo needs none)`

// brokerURL is --url, else $MESSAGING_URL; neither is a usage error.
func (g *globals) brokerURL() (string, error) {
	if g.URL != "" {
		return g.URL, nil
	}
	if v := os.Getenv("MESSAGING_URL"); v != "" {
		return v, nil
	}
	return "", usagef("%s", noBroker)
}

// connect opens the broker named by the flags, giving up after
// --connect-timeout.
func (e *env) connect() (messaging.Client, error) {
	raw, err := e.globals.brokerURL()
	if err != nil {
		return nil, err
	}
	return e.open(raw)
}

// open opens rawURL within --connect-timeout. Open runs in its own
// goroutine, so an adapter that ignores its context cannot hold the command
// past the timeout (the process exits soon after anyway).
func (e *env) open(rawURL string) (messaging.Client, error) {
	if e.globals.ConnectTimeout <= 0 {
		return nil, usagef("--connect-timeout must be positive, not %v", e.globals.ConnectTimeout)
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.globals.ConnectTimeout)
	defer cancel()
	type result struct {
		c   messaging.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := messaging.Open(ctx, rawURL)
		done <- result{c, err}
	}()
	timedOut := func(err error) error {
		msg := fmt.Sprintf("connect to %s: no connection within %v (--connect-timeout)", redacted(rawURL), e.globals.ConnectTimeout)
		if err != nil {
			return fmt.Errorf("%s: %w", msg, err)
		}
		return errors.New(msg)
	}
	select {
	case r := <-done:
		if r.err != nil && e.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, timedOut(r.err)
		}
		return r.c, r.err
	case <-ctx.Done():
		go func() { // close a client that connects too late
			if r := <-done; r.err == nil {
				_ = r.c.Close()
			}
		}()
		if e.ctx.Err() != nil {
			return nil, e.ctx.Err()
		}
		return nil, timedOut(nil)
	}
}

// redacted returns rawURL with every credential hidden (password, token,
// secret parameters), as messaging.RedactURL does.
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if r := messaging.RedactURL(u); r != u.String() {
		return r
	}
	return rawURL // nothing hidden: as written (u.String() turns mem:// into mem:)
}

// hideURLs returns msg with every URL among the command-line arguments
// (whole, or the value of --flag=VALUE) that holds a credential replaced by
// its redacted form: a broker URL typed where a topic belongs (--url
// forgotten) must not come back in the error with its password.
func hideURLs(msg string, args []string) string {
	for _, a := range args {
		cands := []string{a}
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			cands = append(cands, v)
		}
		for _, c := range cands {
			if r := redacted(c); strings.Contains(c, "://") && r != c {
				msg = strings.ReplaceAll(msg, c, r)
			}
		}
	}
	return msg
}
