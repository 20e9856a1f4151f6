package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
)

// headerFlags collects repeated --header k=v flags.
type headerFlags messaging.Header

func (h *headerFlags) String() string { return fmt.Sprint(map[string]string(*h)) }
func (h *headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	if *h == nil {
		*h = headerFlags{}
	}
	(*h)[k] = v
	return nil
}

func runPublish(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "publish", "TOPIC [PAYLOAD...]", "Publishes one message per PAYLOAD argument, or, without any, one per line of stdin.\nPrints each message's ID once the broker has accepted it.")
	getURL := urlFlag(fs)
	key := fs.String("key", "", "message key (ordering / partitioning)")
	var hdr headerFlags
	fs.Var(&hdr, "header", "header key=value (repeatable)")
	if err := parse(a, fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usageError(fs, "missing TOPIC")
	}
	topic := fs.Arg(0)
	if err := messaging.ValidateName(topic); err != nil {
		return usageError(fs, "%v", err)
	}
	client, err := open(ctx, getURL())
	if err != nil {
		return err
	}
	defer client.Close()
	send := func(payload string) error {
		m := &messaging.Message{Key: *key, Payload: []byte(payload)}
		if len(hdr) > 0 {
			m.Header = messaging.Header(hdr)
		}
		if err := client.Publish(ctx, topic, m); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, m.ID)
		return nil
	}
	if fs.NArg() > 1 {
		for _, p := range fs.Args()[1:] {
			if err := send(p); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(a.stdin)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		if err := send(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// printer prints delivered messages in text or JSON lines.
type printer struct {
	w      io.Writer
	format string
	count  atomic.Int64
	limit  int64
	done   chan struct{}
	closed atomic.Bool
}

func newPrinter(w io.Writer, format string, limit int) (*printer, error) {
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("%w: --format %q: want text or json", messaging.ErrInvalidOption, format)
	}
	return &printer{w: w, format: format, limit: int64(limit), done: make(chan struct{})}, nil
}

// jsonMessage is the --format json form of a message.
type jsonMessage struct {
	ID      string            `json:"id"`
	Topic   string            `json:"topic"`
	Key     string            `json:"key,omitempty"`
	Offset  string            `json:"offset,omitempty"`
	Attempt int               `json:"attempt"`
	Time    time.Time         `json:"time"`
	Header  map[string]string `json:"header,omitempty"`
	Payload string            `json:"payload"`
}

func (p *printer) handler(_ context.Context, m *messaging.Message) error {
	n := p.count.Add(1)
	if p.limit > 0 && n > p.limit {
		return errors.New("limit reached") // redelivered to someone else later
	}
	if p.format == "json" {
		b, _ := json.Marshal(jsonMessage{ID: m.ID, Topic: m.Topic, Key: m.Key, Offset: m.Offset, Attempt: m.Attempt, Time: m.Time, Header: m.Header, Payload: string(m.Payload)})
		fmt.Fprintf(p.w, "%s\n", b)
	} else {
		var extra []string
		if m.Offset != "" {
			extra = append(extra, "offset="+m.Offset)
		}
		if m.Key != "" {
			extra = append(extra, "key="+m.Key)
		}
		if m.Attempt > 1 {
			extra = append(extra, fmt.Sprintf("attempt=%d", m.Attempt))
		}
		for k, v := range m.Header {
			extra = append(extra, k+"="+url.QueryEscape(v))
		}
		fmt.Fprintf(p.w, "%s %s %s\t%s\n", m.Time.Format(time.RFC3339Nano), m.ID, strings.Join(extra, " "), m.Payload)
	}
	if p.limit > 0 && n == p.limit && p.closed.CompareAndSwap(false, true) {
		close(p.done)
	}
	return nil
}

// wait blocks until the limit is reached, the subscription ends, ctx is done
// or the idle timer fires.
func (p *printer) wait(ctx context.Context, sub messaging.Subscription, idle time.Duration) error {
	var idleC <-chan time.Time
	if idle > 0 {
		// Elapsed time is the subject: stop after idle without new messages.
		last := p.count.Load()
		t := time.NewTicker(idle)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return nil
			case <-ctx.Done():
				return nil
			case <-sub.Done():
				return sub.Err()
			case <-t.C:
				if n := p.count.Load(); n == last {
					return nil
				} else {
					last = n
				}
			}
		}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	case <-sub.Done():
		return sub.Err()
	case <-idleC:
	}
	return nil
}

func runConsume(ctx context.Context, a *app, args []string) error {
	return consume(ctx, a, args, "consume", "Consumes TOPIC and prints each message (acknowledging it) until interrupted, --count\nmessages were printed, or --idle passed without one. With --group, consumers of the\nsame group share the messages and a new group starts at the oldest retained message;\nwithout one, only messages published from now on are printed.")
}

func runTail(ctx context.Context, a *app, args []string) error {
	return consume(ctx, a, args, "tail", "Prints the messages published to TOPIC from now on (an ephemeral subscription, which\nno other consumer notices), until interrupted, --count or --idle.")
}

func consume(ctx context.Context, a *app, args []string, name, summary string) error {
	fs := newFlags(a, name, "TOPIC", summary)
	getURL := urlFlag(fs)
	var group *string
	if name == "consume" {
		group = fs.String("group", "", "consumer group (default: an ephemeral subscription of its own)")
	}
	count := fs.Int("count", 0, "exit after this many messages (0: no limit)")
	idle := fs.Duration("idle", 0, "exit after this long without a message (0: never)")
	format := fs.String("format", "text", "output format: text or json (one object per line)")
	if err := parse(a, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, "want exactly one TOPIC")
	}
	p, err := newPrinter(a.stdout, *format, *count)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	client, err := open(ctx, getURL())
	if err != nil {
		return err
	}
	defer client.Close()
	var opts []messaging.SubscribeOption
	if group != nil && *group != "" {
		opts = append(opts, messaging.Group(*group))
	}
	sub, err := client.Subscribe(ctx, fs.Arg(0), p.handler, opts...)
	if err != nil {
		return err
	}
	defer sub.Close()
	how := "an ephemeral subscription (new messages only)"
	if len(opts) > 0 {
		how = "group " + *group
	}
	fmt.Fprintf(a.stderr, "msgctl: consuming %s as %s; Ctrl-C to stop\n", fs.Arg(0), how)
	return p.wait(ctx, sub, *idle)
}

// parsePosition reads --from: earliest, latest, an offset, after:OFFSET or an
// RFC 3339 time.
func parsePosition(s string) (messaging.Position, error) {
	switch {
	case s == "earliest" || s == "":
		return messaging.Earliest, nil
	case s == "latest":
		return messaging.Latest, nil
	case strings.HasPrefix(s, "after:"):
		return messaging.AfterOffset(strings.TrimPrefix(s, "after:")), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return messaging.AtTime(t), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return messaging.AtTime(time.Now().Add(-d)), nil
	}
	return messaging.AtOffset(s), nil
}

func runReplay(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "replay", "TOPIC", "Prints TOPIC's retained log from --from on, in log order, without a consumer group\n(no group notices). Stops at the end of the log after --idle, at --count, or when\ninterrupted; with --follow it keeps printing new messages.\n--from: earliest | latest | OFFSET | after:OFFSET | RFC 3339 time | DURATION ago (e.g. 10m)")
	getURL := urlFlag(fs)
	from := fs.String("from", "earliest", "where to start (see above)")
	count := fs.Int("count", 0, "exit after this many messages (0: no limit)")
	idle := fs.Duration("idle", time.Second, "exit after this long without a message, unless --follow")
	follow := fs.Bool("follow", false, "keep following the log")
	format := fs.String("format", "text", "output format: text or json (one object per line)")
	if err := parse(a, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, "want exactly one TOPIC")
	}
	pos, err := parsePosition(*from)
	if err != nil {
		return usageError(fs, "--from: %v", err)
	}
	p, err := newPrinter(a.stdout, *format, *count)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	client, err := open(ctx, getURL())
	if err != nil {
		return err
	}
	defer client.Close()
	s, ok := client.(messaging.Stream)
	if !ok || !client.Capabilities().Replay {
		return fmt.Errorf("%s cannot replay: %w", redacted(getURL()), messaging.ErrUnsupported)
	}
	sub, err := s.Read(ctx, fs.Arg(0), pos, p.handler)
	if err != nil {
		return err
	}
	defer sub.Close()
	if *follow {
		*idle = 0
	}
	return p.wait(ctx, sub, *idle)
}

// redacted returns rawURL without its password, for output.
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); !ok {
		return rawURL
	}
	return u.Redacted()
}
