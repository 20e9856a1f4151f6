package asyncpub

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
)

// SendFunc publishes msgs, all valid and all to topic, as one batch, and
// returns nil, a *messaging.PublishError with one entry per message, or an
// error that applies to every message: an adapter's Publish.
type SendFunc func(ctx context.Context, topic string, msgs ...*messaging.Message) error

// ValidateFunc checks one message as the adapter's Publish would before
// sending anything, and sets its ID and Time; an error fails that message
// alone.
type ValidateFunc func(topic string, m *messaging.Message) error

// Batcher implements messaging.AsyncPublisher for adapters whose native
// pipelining is a batch publish (a Redis pipeline of XADDs, RabbitMQ
// publishes on one confirm channel, the Kafka producer's per-partition
// requests): messages wait in one of a few lanes, and each lane sends
// everything queued in it (up to a bound) as one batch while the next batch
// fills. A message's lane is chosen by its Key, so messages with the same
// Key go through one lane, one batch after the other, in order; keyless
// messages are spread over the lanes. Several lanes keep the broker busy
// while a batch waits for its answer.
type Batcher struct {
	t        *Tracker
	validate ValidateFunc
	send     SendFunc
	maxBatch int
	seed     maphash.Seed
	stamp    bool // note when each message was queued (StampEnqueue)
	next     atomic.Uint32
	lanes    []*lane
	wg       sync.WaitGroup
}

type item struct {
	ctx   context.Context
	topic string
	msg   *messaging.Message
	done  messaging.PublishCallback
	at    time.Time // when it was queued, if the Batcher stamps
}

type lane struct {
	mu      sync.Mutex
	q       []item
	running bool // a goroutine sends this lane's batches
}

// NewBatcher returns a Batcher with lanes lanes sending batches of at most
// maxBatch messages, bounded by a window of DefaultWindow pending messages.
func NewBatcher(lanes, maxBatch int, validate ValidateFunc, send SendFunc) *Batcher {
	b := &Batcher{
		t:        NewTracker(nil),
		validate: validate,
		send:     send,
		maxBatch: max(maxBatch, 1),
		seed:     maphash.MakeSeed(),
		lanes:    make([]*lane, max(lanes, 1)),
	}
	for i := range b.lanes {
		b.lanes[i] = &lane{}
	}
	return b
}

// StampEnqueue makes b note when each message is queued and tell send, in
// the context it gets, when each message of a batch was (see Enqueued), so
// that an adapter can run a message's deadlines from then rather than from
// when its batch is sent. It costs one clock reading per message. Call it
// before the first PublishAsync; it returns b.
func (b *Batcher) StampEnqueue() *Batcher {
	b.stamp = true
	return b
}

type enqueuedKey struct{}

// Enqueued returns, in the context a Batcher made with StampEnqueue gives
// its send function, when each message of the batch was queued (in the
// order of the messages, so never decreasing); nil in any other context.
func Enqueued(ctx context.Context) []time.Time {
	at, _ := ctx.Value(enqueuedKey{}).([]time.Time)
	return at
}

// PublishAsync implements messaging.AsyncPublisher.PublishAsync.
func (b *Batcher) PublishAsync(ctx context.Context, topic string, m *messaging.Message, done messaging.PublishCallback) {
	if !Check(ctx, b.t, topic, m, b.validate, done) {
		return
	}
	var l *lane
	if m.Key != "" {
		l = b.lanes[maphash.String(b.seed, m.Key)%uint64(len(b.lanes))]
	} else {
		l = b.lanes[b.next.Add(1)%uint32(len(b.lanes))] // uint32: never negative where int has 32 bits
	}
	it := item{ctx: ctx, topic: topic, msg: m, done: done}
	l.mu.Lock()
	if b.stamp {
		it.at = time.Now() // under the lock: a lane's times never decrease
	}
	l.q = append(l.q, it)
	if !l.running {
		l.running = true
		b.wg.Add(1)
		go b.run(l)
	}
	l.mu.Unlock()
}

// Check does what every PublishAsync does first: it fails a nil message, a
// closed client, an invalid message (validate) and a done ctx, and then
// admits the message to the window (Begin; a Flush meanwhile waits for
// it). It reports a failure to done (Tracker.Fail) and returns false; on
// true the caller must End the message once.
func Check(ctx context.Context, t *Tracker, topic string, m *messaging.Message, validate ValidateFunc, done messaging.PublishCallback) bool {
	fail := func(err error) bool {
		t.Fail(done, m, err)
		return false
	}
	switch {
	case m == nil:
		return fail(fmt.Errorf("messaging: publish to %s: nil message: %w", topic, messaging.ErrInvalidOption))
	case t.Closed():
		return fail(fmt.Errorf("messaging: publish to %s: %w", topic, messaging.ErrClosed))
	}
	if err := validate(topic, m); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("messaging: publish to %s: %w", topic, err))
	}
	reported := false
	err := t.begin(ctx, func(err error) {
		reported = true
		Fail(done, m, fmt.Errorf("messaging: publish to %s: %w", topic, err))
	})
	if err != nil && !reported {
		return fail(fmt.Errorf("messaging: publish to %s: %w", topic, err))
	}
	return err == nil
}

// run sends l's batches until l is empty.
func (b *Batcher) run(l *lane) {
	defer b.wg.Done()
	for {
		l.mu.Lock()
		n := min(len(l.q), b.maxBatch)
		if n == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		batch := make([]item, n)
		copy(batch, l.q)
		if n == len(l.q) {
			clear(l.q)
			l.q = l.q[:0]
		} else {
			l.q = l.q[n:]
		}
		l.mu.Unlock()
		b.sendBatch(batch)
	}
}

// sendBatch sends the messages of batch still wanted, one publish per
// topic, and reports every message's result.
func (b *Batcher) sendBatch(batch []item) {
	live := batch
	for {
		// Checked before each publish: the messages of a later topic are
		// still queued while an earlier topic's are sent.
		if live = b.drop(live); len(live) == 0 {
			return
		}
		// The messages of the first topic, in order; the rest wait for the
		// next round (a batch usually holds one topic).
		topic := live[0].topic
		var msgs []*messaging.Message
		var its, rest []item
		var at []time.Time
		if b.stamp {
			at = make([]time.Time, 0, len(live))
		}
		for _, it := range live {
			if it.topic == topic {
				msgs = append(msgs, it.msg)
				its = append(its, it)
				if b.stamp {
					at = append(at, it.at)
				}
			} else {
				rest = append(rest, it)
			}
		}
		ctx := context.WithValue(context.Background(), unwantedKey{}, func(i int) error {
			return its[i].unwanted(b.t.Closed())
		})
		ctx = context.WithValue(ctx, closingKey{}, b.t.Closing())
		if b.stamp {
			ctx = context.WithValue(ctx, enqueuedKey{}, at)
		}
		err := b.send(ctx, topic, msgs...)
		var pe *messaging.PublishError
		perMsg := errors.As(err, &pe) && len(pe.Errs) == len(its)
		for i, it := range its {
			e := err
			if perMsg {
				e = pe.Errs[i]
			}
			b.t.End(it.done, it.msg, e)
		}
		live = rest
	}
}

// drop ends the messages of batch that are no longer wanted (their ctx
// ended, or b closed) and returns the others, in batch's array.
func (b *Batcher) drop(batch []item) []item {
	closed := b.t.Closed()
	live := batch[:0]
	for _, it := range batch {
		if err := it.unwanted(closed); err != nil {
			b.t.End(it.done, it.msg, err)
			continue
		}
		live = append(live, it)
	}
	return live
}

// unwanted says why it is no longer to be sent (its ctx ended, or the
// Batcher closed), nil while it is.
func (it *item) unwanted(closed bool) error {
	switch {
	case it.ctx.Err() != nil:
		return fmt.Errorf("messaging: publish to %s: queued: %w", it.topic, it.ctx.Err())
	case closed:
		return fmt.Errorf("messaging: publish to %s: queued when the client closed: %w", it.topic, messaging.ErrClosed)
	}
	return nil
}

type (
	unwantedKey struct{}
	closingKey  struct{}
)

// Unwanted returns, in the context a Batcher gives its send function, a
// function that says why message i of the batch is no longer to be sent
// (its PublishAsync ctx ended: an error wrapping ctx's; or the Batcher
// was closed: messaging.ErrClosed), nil while it is: the errors with which
// the Batcher fails a message still queued. A send that waits before it
// can write (for a connection, for a channel) calls it once it can, and
// fails the messages no longer wanted with that error, unsent, so that a
// message's ctx is honoured until its turn to be sent comes. It returns
// nil in any other context.
func Unwanted(ctx context.Context) func(i int) error {
	f, _ := ctx.Value(unwantedKey{}).(func(int) error)
	return f
}

// Closing returns, in the context a Batcher gives its send function, a
// channel closed once the Batcher's Close begins: a send waiting before it
// can write (for a connection) stops waiting then, and fails the messages
// with Unwanted's errors (messaging.ErrClosed), so that Close does not wait
// out the adapter's timeouts for messages never sent. It returns nil in
// any other context.
func Closing(ctx context.Context) <-chan struct{} {
	c, _ := ctx.Value(closingKey{}).(<-chan struct{})
	return c
}

// Flush implements messaging.AsyncPublisher.Flush.
func (b *Batcher) Flush(ctx context.Context) error { return b.t.Flush(ctx) }

// Close refuses new messages, fails those still queued with
// messaging.ErrClosed, waits for the batches in flight and their results,
// and returns. Call it first in the client's Close, while publishing still
// works.
func (b *Batcher) Close() {
	b.t.Close()
	_ = b.t.Flush(context.Background())
	b.wg.Wait()
}

// Lazy holds a client's Batcher, made on first use, so that a client that
// never publishes asynchronously pays nothing for it. The zero value is
// ready.
type Lazy struct{ p atomic.Pointer[Batcher] }

// Get returns the Batcher, making it with make on first use.
func (l *Lazy) Get(make func() *Batcher) *Batcher {
	if b := l.p.Load(); b != nil {
		return b
	}
	b := make()
	if !l.p.CompareAndSwap(nil, b) {
		return l.p.Load()
	}
	return b
}

// Flush flushes the Batcher, if one was made.
func (l *Lazy) Flush(ctx context.Context) error {
	if b := l.p.Load(); b != nil {
		return b.Flush(ctx)
	}
	return nil
}

// Close closes the Batcher, if one was made, and otherwise puts a closed
// one in its place: from then on, PublishAsync fails at once with
// messaging.ErrClosed whether or not the client had published
// asynchronously before Close (a Batcher made after Close would send
// through the client's publish, which still works while the client's Close
// runs).
func (l *Lazy) Close() {
	closed := NewBatcher(1, 1, nil, nil) // Check fails before validate and send
	closed.t.Close()
	if !l.p.CompareAndSwap(nil, closed) {
		l.p.Load().Close()
	}
}
