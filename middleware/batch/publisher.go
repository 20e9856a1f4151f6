package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/messaging"
)

// NewPublisher returns a Publisher that coalesces concurrent Publish calls to
// the same topic into one p.Publish call: a batch is sent when it holds
// WithBatchSize messages or WithMaxBatchBytes bytes, or once WithBatchTimeout
// (the linger, default 0) has passed since its first call and fewer than
// WithMaxInFlight sends to the topic are in progress (so under load, calls gather while earlier sends run). The
// messages of one call are never split between batches (a call larger than
// the limits is sent alone), and calls are appended in arrival order, so
// per-key order holds as for p.
//
// Each Publish returns when its batch has been sent, with the result for its
// own messages: nil, a *messaging.PublishError holding just its messages'
// entries when p reported per-message failures, or p's error. Publish sets
// ID and Time as p does (p fills them). A caller whose context ends before
// its batch is sent gets ctx.Err() and its messages are taken out of the
// batch; once sending started it waits for the result (bounded by
// WithSendTimeout). When p rejects a whole batch as invalid before sending
// anything (ErrMessageTooLarge, ErrInvalidOption), each call of the batch is
// sent again on its own, so one caller's bad message does not fail the
// others. Publish is safe for concurrent use; a single caller gains
// nothing from batching (it waits for each send), so publish from several
// goroutines.
//
// Close sends what is pending, waits for sends in flight, and makes later
// Publish calls fail with ErrClosed. It does not close p, which the caller
// owns (as bufio.Writer does not close its writer).
//
// A nil p is rejected with an error wrapping messaging.ErrInvalidOption;
// opts are applied in order and the first error is returned.
func NewPublisher(p messaging.Publisher, opts ...Option) (messaging.Publisher, error) {
	if p == nil {
		return nil, fmt.Errorf("batch: NewPublisher: nil publisher: %w", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig("NewPublisher", true, opts)
	if err != nil {
		return nil, err
	}
	return &publisher{p: p, cfg: cfg, topics: map[string]*topicState{}}, nil
}

type publisher struct {
	p      messaging.Publisher
	cfg    config
	mu     sync.Mutex
	topics map[string]*topicState
	closed bool
	wg     sync.WaitGroup
}

// topicState is a topic's batch being gathered and its sends in progress.
// Guarded by publisher.mu.
type topicState struct {
	open     *send
	inFlight int
}

// part is one caller's messages in a send.
type part struct {
	msgs      []*messaging.Message
	withdrawn bool
	err       error
}

// send is one batch for one topic. Fields are guarded by publisher.mu until
// started; part.err is written before done is closed.
type send struct {
	ctx     context.Context
	topic   string
	parts   []*part
	n       int
	bytes   int
	ready   bool // the linger has passed: send as soon as a slot is free
	started bool
	timer   *time.Timer
	done    chan struct{}
}

func (b *publisher) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("batch: publish: topic: %w", err)
	}
	size := 0
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("batch: publish: message %d is nil: %w", i, messaging.ErrInvalidOption)
		}
		size += m.Size()
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pt := &part{msgs: msgs}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("batch: publish: %w", messaging.ErrClosed)
	}
	ts := b.topics[topic]
	if ts == nil {
		ts = &topicState{}
		b.topics[topic] = ts
	}
	s := ts.open
	if s != nil && (s.n+len(msgs) > b.cfg.maxMessages || (b.cfg.maxBytes > 0 && s.bytes+size > b.cfg.maxBytes)) {
		b.start(ts, s) // this call does not fit: send the batch as it is
		go b.run(ts, s)
		s = nil
	}
	if s == nil {
		s = &send{ctx: context.WithoutCancel(ctx), topic: topic, done: make(chan struct{})}
		ts.open = s
		if b.cfg.linger > 0 {
			s.timer = time.AfterFunc(b.cfg.linger, func() { b.lingered(ts, s) })
		} else {
			s.ready = true
		}
	}
	s.parts = append(s.parts, pt)
	s.n += len(msgs)
	s.bytes += size
	now := s.n >= b.cfg.maxMessages || (b.cfg.maxBytes > 0 && s.bytes >= b.cfg.maxBytes) ||
		(s.ready && ts.inFlight < b.cfg.maxInFlight)
	if now {
		b.start(ts, s)
	}
	b.mu.Unlock()
	if now {
		b.run(ts, s) // the caller that completes a batch sends it: backpressure
	}
	select {
	case <-s.done:
		return pt.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !s.started {
		pt.withdrawn = true // its messages no longer count towards the limits
		s.n -= len(msgs)
		s.bytes -= size
		b.mu.Unlock()
		return ctx.Err()
	}
	b.mu.Unlock()
	<-s.done
	return pt.err
}

// start takes s out of gathering and counts it in flight; the caller then
// runs it. Nobody joins or withdraws from a started send. Callers hold mu.
func (b *publisher) start(ts *topicState, s *send) {
	if ts.open == s {
		ts.open = nil
	}
	s.started = true
	if s.timer != nil {
		s.timer.Stop()
	}
	ts.inFlight++
	b.wg.Add(1)
}

// lingered marks s ready and sends it if a slot is free (the linger timer).
func (b *publisher) lingered(ts *topicState, s *send) {
	b.mu.Lock()
	if s.started {
		b.mu.Unlock()
		return
	}
	s.ready = true
	if ts.inFlight >= b.cfg.maxInFlight {
		b.mu.Unlock() // sent when a send in flight finishes
		return
	}
	b.start(ts, s)
	b.mu.Unlock()
	b.run(ts, s)
}

// run sends a started batch, hands out the results, and starts the topic's
// next ready batch.
func (b *publisher) run(ts *topicState, s *send) {
	b.send(s)
	close(s.done)
	b.mu.Lock()
	ts.inFlight--
	next := ts.open
	if next != nil && next.ready && ts.inFlight < b.cfg.maxInFlight {
		b.start(ts, next)
		go b.run(ts, next)
	}
	if ts.inFlight == 0 && ts.open == nil && b.topics[s.topic] == ts {
		delete(b.topics, s.topic) // idle: forget the topic
	}
	b.mu.Unlock()
	b.wg.Done()
}

func (b *publisher) send(s *send) {
	var all []*messaging.Message
	var parts []*part
	for _, pt := range s.parts {
		if !pt.withdrawn {
			parts = append(parts, pt)
			all = append(all, pt.msgs...)
		}
	}
	if len(all) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, b.cfg.sendTimeout)
	defer cancel()
	err := b.p.Publish(ctx, s.topic, all...)
	if err == nil {
		return
	}
	var pe *messaging.PublishError
	if errors.As(err, &pe) && len(pe.Errs) == len(all) {
		off := 0
		for _, pt := range parts {
			errs := pe.Errs[off : off+len(pt.msgs)]
			off += len(pt.msgs)
			for _, e := range errs {
				if e != nil {
					pt.err = &messaging.PublishError{Errs: append([]error(nil), errs...)}
					break
				}
			}
		}
		return
	}
	if len(parts) > 1 && (errors.Is(err, messaging.ErrMessageTooLarge) || errors.Is(err, messaging.ErrInvalidOption) || errors.Is(err, messaging.ErrInvalidHeader)) {
		// One caller's bad message must not fail the others: nothing was
		// sent (validation comes first), so send each call on its own.
		for _, pt := range parts {
			pt.err = b.p.Publish(ctx, s.topic, pt.msgs...)
		}
		return
	}
	for _, pt := range parts {
		pt.err = err
	}
}

func (b *publisher) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.closed = true
	type pending struct {
		ts *topicState
		s  *send
	}
	var ps []pending
	for _, ts := range b.topics {
		if s := ts.open; s != nil {
			b.start(ts, s)
			ps = append(ps, pending{ts, s})
		}
	}
	b.mu.Unlock()
	for _, p := range ps {
		go b.run(p.ts, p.s)
	}
	b.wg.Wait()
	return nil
}
