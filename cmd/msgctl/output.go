package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/msgkit/messaging"
)

// printFlags are the flags of every command that prints messages.
type printFlags struct {
	Count  int    `help:"Exit after this many messages (0: no limit)." default:"0"`
	Format string `help:"Output format: text, or json (one object per line; the payload is in \"payload\" when it is valid UTF-8, else base64 in \"payload_base64\")." enum:"text,json" default:"text"`
}

// outputFlags are the flags of the commands that print messages as they
// arrive (replay has its own --idle, with a default).
type outputFlags struct {
	printFlags
	Idle time.Duration `help:"Exit after this long without a message (0: never)." placeholder:"DURATION"`
}

// printer prints delivered messages as text or JSON lines. Its handler
// returns nil (acknowledging the message) only once the message's line is
// written; a failed write fails the message (it is redelivered) and ends
// the command with the write's error.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	json   bool
	count  atomic.Int64
	limit  int64
	done   chan struct{}
	closed atomic.Bool
	err    error // the first failed write; guarded by mu
	born   time.Time
	last   atomic.Int64 // when the last message arrived, as time since born (0: none yet)
}

func newPrinter(w io.Writer, f outputFlags) (*printer, error) {
	if f.Count < 0 || f.Idle < 0 {
		return nil, usagef("--count and --idle must not be negative")
	}
	return &printer{w: w, json: f.Format == "json", limit: int64(f.Count), done: make(chan struct{}), born: time.Now()}, nil
}

// jsonMessage is the --format json form of a message. Payload holds a
// payload that is valid UTF-8; any other payload is PayloadBase64 (standard
// encoding), so binary payloads survive the round trip.
type jsonMessage struct {
	ID            string            `json:"id"`
	Topic         string            `json:"topic"`
	Key           string            `json:"key,omitempty"`
	Offset        string            `json:"offset,omitempty"`
	Attempt       int               `json:"attempt"`
	Time          time.Time         `json:"time"`
	Header        map[string]string `json:"header,omitempty"`
	Payload       *string           `json:"payload,omitempty"`
	PayloadBase64 *string           `json:"payload_base64,omitempty"`
}

// formatJSON returns m as one JSON line.
func formatJSON(m *messaging.Message) []byte {
	j := jsonMessage{ID: m.ID, Topic: m.Topic, Key: m.Key, Offset: m.Offset, Attempt: m.Attempt, Time: m.Time, Header: m.Header}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		j.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(m.Payload)
		j.PayloadBase64 = &s
	}
	b, _ := json.Marshal(j) // strings, ints and a time: cannot fail
	return append(b, '\n')
}

// textPayload is a payload for text output: as is when valid UTF-8, else
// "base64:" and its base64 encoding.
func textPayload(p []byte) string {
	if utf8.Valid(p) {
		return string(p)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(p)
}

func (p *printer) handler(_ context.Context, m *messaging.Message) error {
	p.last.Store(max(int64(time.Since(p.born)), 1))
	n := p.count.Add(1)
	if p.limit > 0 && n > p.limit {
		return errors.New("limit reached") // redelivered to someone else later
	}
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return p.err
	}
	var err error
	if p.json {
		_, err = p.w.Write(formatJSON(m))
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
		for _, k := range slices.Sorted(maps.Keys(m.Header)) {
			extra = append(extra, k+"="+url.QueryEscape(m.Header[k]))
		}
		_, err = fmt.Fprintf(p.w, "%s %s %s\t%s\n", m.Time.Format(time.RFC3339Nano), m.ID, strings.Join(extra, " "), textPayload(m.Payload))
	}
	if err != nil {
		p.err = fmt.Errorf("write output: %w", err)
		err = p.err
	}
	p.mu.Unlock()
	if (err != nil || p.limit > 0 && n == p.limit) && p.closed.CompareAndSwap(false, true) {
		close(p.done)
	}
	return err
}

// wait blocks until the limit is reached, a write failed (its error is
// returned), the subscription ends, ctx is done or idle passed since the
// last message arrived, or since wait began if none has (idle 0: never).
func (p *printer) wait(ctx context.Context, sub messaging.Subscription, idle time.Duration) error {
	var tick <-chan time.Time
	var timer *time.Timer
	start := time.Now()
	if idle > 0 {
		// Elapsed time is the subject: stop after idle without new messages.
		timer = time.NewTimer(idle)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		select {
		case <-p.done:
			return p.doneErr()
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			select {
			case <-p.done: // the limit was reached: the read's end is ours
				return p.doneErr()
			default:
				return sub.Err()
			}
		case <-tick:
			last := start
			if n := p.last.Load(); n != 0 {
				last = p.born.Add(time.Duration(n))
			}
			if rest := idle - time.Since(last); rest > 0 {
				timer.Reset(rest)
				continue
			}
			return nil
		}
	}
}

// doneErr is the outcome once done is closed: nil when the limit was
// reached, else the failed write's error.
func (p *printer) doneErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
