package memory

import (
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// DefaultMaxMessageSize is the default limit on Message.Size.
const DefaultMaxMessageSize = 1 << 20

// Broker is an in-process broker. Clients of the same Broker see the same
// topics and groups. It is safe for concurrent use.
type Broker struct {
	maxLen int64
	mu     sync.Mutex
	topics map[string]*topic
}

// NewBroker returns an empty broker. Only WithMaxLen applies to a broker:
// a Client option (WithMaxMessageSize, WithLogger) makes it fail with
// messaging.ErrInvalidOption, as does an invalid value.
func NewBroker(opts ...Option) (*Broker, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.clientOpt != "" {
		return nil, fmt.Errorf("memory: NewBroker: %s applies to a Client (Broker.NewClient or New), not to a Broker: %w", cfg.clientOpt, messaging.ErrInvalidOption)
	}
	return newBroker(cfg), nil
}

func newBroker(cfg config) *Broker {
	return &Broker{maxLen: cfg.maxLen, topics: map[string]*topic{}}
}

func (b *Broker) topic(name string) *topic {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		t = &topic{name: name, maxLen: b.maxLen, groups: map[string]*group{}, changed: make(chan struct{})}
		b.topics[name] = t
	}
	return t
}

// entry is one message in a topic's log.
type entry struct {
	msg      messaging.Message // Payload and Header owned by the log
	offset   int64
	appended time.Time // broker time, for AtTime positions; never decreases along the log
}

// topic is a retained log plus its groups. All state is guarded by mu;
// changed is closed (and replaced) whenever a waiter may have work.
type topic struct {
	name   string
	maxLen int64 // 0: keep everything

	mu      sync.Mutex
	log     []*entry
	base    int64 // offset of log[0]
	bytes   int64 // sum of the retained messages' Size
	groups  map[string]*group
	changed chan struct{}
	deleted bool // removed from the broker: its subscriptions end
}

// end is the offset the next message gets. Callers hold mu.
func (t *topic) end() int64 { return t.base + int64(len(t.log)) }

// broadcast wakes every waiter. Callers hold mu.
func (t *topic) broadcast() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *topic) append(msgs []*messaging.Message) {
	entries := make([]entry, len(msgs))
	t.mu.Lock()
	defer t.mu.Unlock()
	// The broker time is taken under the lock and never goes back along the
	// log, so resolve's binary search for AtTime is over sorted times. It is
	// wall-clock only (Round(0) drops the monotonic reading), so AtTime
	// always compares wall clocks, and the max below holds the order even
	// when the wall clock steps back.
	now := time.Now().Round(0)
	if n := len(t.log); n > 0 && now.Before(t.log[n-1].appended) {
		now = t.log[n-1].appended
	}
	for i, m := range msgs {
		e := &entries[i]
		e.offset = t.end()
		e.appended = now
		e.msg = messaging.Message{
			ID: m.ID, Key: m.Key, Topic: t.name, Time: m.Time,
			Payload: append([]byte(nil), m.Payload...),
			Offset:  strconv.FormatInt(e.offset, 10),
		}
		if m.Header != nil {
			e.msg.Header = make(messaging.Header, len(m.Header))
			for k, v := range m.Header {
				e.msg.Header[k] = v
			}
		}
		t.log = append(t.log, e)
		t.bytes += int64(e.msg.Size())
	}
	if t.maxLen > 0 && int64(len(t.log)) > t.maxLen {
		drop := len(t.log) - int(t.maxLen)
		for _, e := range t.log[:drop] {
			t.bytes -= int64(e.msg.Size())
		}
		clear(t.log[:drop])
		t.log = t.log[drop:]
		t.base += int64(drop)
		for _, g := range t.groups {
			g.cursor = max(g.cursor, t.base)
		}
	}
	t.broadcast()
}

// at returns the entry with offset off. Callers hold mu.
func (t *topic) at(off int64) *entry {
	if off < t.base || off >= t.end() {
		return nil
	}
	return t.log[off-t.base]
}

// resolve turns a Position into a log offset. Callers hold mu.
func (t *topic) resolve(p messaging.Position) (int64, error) {
	switch p.Kind {
	case messaging.PositionEarliest:
		return t.base, nil
	case messaging.PositionLatest:
		return t.end(), nil
	case messaging.PositionAtOffset, messaging.PositionAfterOffset:
		off, err := strconv.ParseInt(p.Offset, 10, 64)
		if err != nil || off < 0 {
			return 0, errInvalidOffset(p)
		}
		if p.Kind == messaging.PositionAfterOffset {
			off++
		}
		return max(off, t.base), nil
	case messaging.PositionAtTime:
		i := sort.Search(len(t.log), func(i int) bool { return !t.log[i].appended.Before(p.Time) })
		return t.base + int64(i), nil
	}
	return 0, p.Validate()
}

// group is a consumer group's state in a topic. Guarded by the topic's mu.
type group struct {
	name      string
	ephemeral bool
	cursor    int64 // next offset never delivered
	pending   map[int64]*pending
	nextToken uint64
	members   int    // live subscriptions
	redeliver uint64 // deliveries that were redeliveries (Attempt > 1), ever
}

// pending is a delivered, unacknowledged message.
type pending struct {
	e         *entry
	attempts  int       // deliveries so far
	inFlight  bool      // held by a subscription now
	holder    uint64    // the subscription that holds or last held it
	token     uint64    // identifies the current delivery; stale settles are ignored
	deadline  time.Time // in flight: redeliver after this
	notBefore time.Time // not in flight: redeliver from this time on
}

func (t *topic) group(name string, ephemeral bool, start messaging.Position) (*group, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[name]; ok {
		return g, nil
	}
	cur, err := t.resolve(start)
	if err != nil {
		return nil, err
	}
	g := &group{name: name, ephemeral: ephemeral, cursor: cur, pending: map[int64]*pending{}}
	t.groups[name] = g
	return g, nil
}

// join and leave count a group's live subscriptions; an ephemeral group is
// dropped when its subscription leaves.
func (t *topic) join(g *group) {
	t.mu.Lock()
	g.members++
	t.mu.Unlock()
}

func (t *topic) leave(g *group) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g.members--
	if g.ephemeral {
		delete(t.groups, g.name)
	}
	t.broadcast() // its expired deliveries are now for the others
}

// delivery is what fetch hands out: a copy for the handler plus its token.
type delivery struct {
	msg   *messaging.Message
	off   int64
	token uint64
}

// fetch takes up to n deliverable messages of g: due redeliveries first (in
// offset order), then new ones. If there are none it returns the channel to
// wait on and when to look again (zero: only on change).
//
// An expired delivery goes to another member when the group has one: the
// holder is presumed stuck, and would only queue it behind itself again.
func (t *topic) fetch(g *group, sub uint64, n int, ackDeadline time.Duration, maxAttempts int, log *slog.Logger) ([]delivery, <-chan struct{}, time.Time, error) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return nil, nil, time.Time{}, messaging.ErrTopicDeleted
	}
	var out []delivery
	var wake time.Time
	var due []*pending
	for _, p := range g.pending {
		switch {
		case p.inFlight && !now.Before(p.deadline) && p.holder == sub && g.members > 1:
			// left for another member
		case p.inFlight && !now.Before(p.deadline):
			if maxAttempts > 0 && p.attempts >= maxAttempts {
				log.Warn("memory: giving up on message after ack deadline", "topic", t.name, "group", g.name, "id", p.e.msg.ID, "attempts", p.attempts)
				delete(g.pending, p.e.offset)
				continue
			}
			due = append(due, p)
		case !p.inFlight && !now.Before(p.notBefore):
			due = append(due, p)
		case p.inFlight:
			wake = earliest(wake, p.deadline)
		default:
			wake = earliest(wake, p.notBefore)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].e.offset < due[j].e.offset })
	for _, p := range due {
		if len(out) == n {
			wake = now // more are due: look again at once
			break
		}
		out = append(out, t.deliver(g, p, sub, now, ackDeadline))
	}
	for len(out) < n && g.cursor < t.end() {
		e := t.at(g.cursor)
		g.cursor++
		if e == nil {
			continue
		}
		p := &pending{e: e}
		g.pending[e.offset] = p
		out = append(out, t.deliver(g, p, sub, now, ackDeadline))
	}
	if len(out) > 0 {
		return out, nil, time.Time{}, nil
	}
	return nil, t.changed, wake, nil
}

func (t *topic) deliver(g *group, p *pending, sub uint64, now time.Time, ackDeadline time.Duration) delivery {
	g.nextToken++
	p.holder = sub
	p.attempts++
	if p.attempts > 1 {
		g.redeliver++
	}
	p.inFlight = true
	p.token = g.nextToken
	p.deadline = now.Add(ackDeadline)
	m := p.e.msg.Clone()
	m.Group = g.name
	if g.ephemeral {
		m.Group = ""
	}
	m.Attempt = p.attempts
	return delivery{msg: m, off: p.e.offset, token: p.token}
}

// settle applies outcomes to deliveries of g. Stale deliveries (the message
// was redelivered meanwhile) are ignored. A nack or release wakes the
// group's members at once.
func (t *topic) settle(g *group, batch []driver.Settlement) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now, wake := time.Now(), false
	for _, st := range batch {
		dl := st.Token.(delivery)
		p := g.pending[dl.off]
		if p == nil || p.token != dl.token || !p.inFlight {
			continue
		}
		switch st.Outcome {
		case driver.Ack, driver.Term:
			delete(g.pending, dl.off)
			continue
		case driver.Release:
			p.attempts--
			p.notBefore = time.Time{}
		case driver.Nack:
			p.notBefore = now.Add(st.Delay)
		}
		p.inFlight = false
		wake = true
	}
	if wake {
		t.broadcast()
	}
}

// extend pushes the deadline of sub's deliveries ds of g back to
// ackDeadline from now. A delivery settled or redelivered meanwhile (its
// token is stale), or no longer held by sub, is left alone.
func (t *topic) extend(g *group, sub uint64, ds []driver.Delivery, ackDeadline time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	deadline := time.Now().Add(ackDeadline)
	for _, d := range ds {
		dl := d.Token.(delivery)
		p := g.pending[dl.off]
		if p == nil || p.token != dl.token || !p.inFlight || p.holder != sub {
			continue
		}
		if deadline.After(p.deadline) {
			p.deadline = deadline
		}
	}
}

// remove marks t deleted and wakes its subscriptions, which end.
func (t *topic) remove() {
	t.mu.Lock()
	t.deleted = true
	t.broadcast()
	t.mu.Unlock()
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
