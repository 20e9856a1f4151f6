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
// MaxMessages messages or MaxBytes bytes, or Linger after its first call. The
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
// SendTimeout). When p rejects a whole batch as invalid before sending
// anything (ErrMessageTooLarge, ErrInvalidOption), each call of the batch is
// sent again on its own, so one caller's bad message does not fail the
// others. Publish is safe for concurrent use; a single caller gains
// nothing from batching (it waits for each send), so publish from several
// goroutines.
//
// Close sends what is pending, waits for sends in flight, and makes later
// Publish calls fail with ErrClosed. It does not close p, which the caller
// owns (as bufio.Writer does not close its writer).
func NewPublisher(p messaging.Publisher, opts ...Option) messaging.Publisher {
	if p == nil {
		panic("batch: nil publisher")
	}
	return &publisher{p: p, cfg: newConfig(opts), open: map[string]*send{}}
}

type publisher struct {
	p      messaging.Publisher
	cfg    config
	mu     sync.Mutex
	open   map[string]*send
	closed bool
	wg     sync.WaitGroup
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
	s := b.open[topic]
	if s != nil && (s.n+len(msgs) > b.cfg.maxMessages || (b.cfg.maxBytes > 0 && s.bytes+size > b.cfg.maxBytes)) {
		b.detach(s) // this call does not fit: send the batch as it is
		b.wg.Add(1)
		go b.run(s)
		s = nil
	}
	if s == nil {
		s = &send{ctx: context.WithoutCancel(ctx), topic: topic, done: make(chan struct{})}
		b.open[topic] = s
		s.timer = time.AfterFunc(b.cfg.linger, func() { b.flush(s) })
	}
	s.parts = append(s.parts, pt)
	s.n += len(msgs)
	s.bytes += size
	full := s.n >= b.cfg.maxMessages || (b.cfg.maxBytes > 0 && s.bytes >= b.cfg.maxBytes)
	if full {
		b.detach(s)
		b.wg.Add(1)
	}
	b.mu.Unlock()
	if full {
		b.run(s) // the caller that fills a batch sends it: backpressure
	}
	select {
	case <-s.done:
		return pt.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !s.started {
		pt.withdrawn = true
		b.mu.Unlock()
		return ctx.Err()
	}
	b.mu.Unlock()
	<-s.done
	return pt.err
}

// detach removes s from the open batches and marks it started, so nobody
// joins or withdraws from it. Callers hold mu.
func (b *publisher) detach(s *send) {
	if b.open[s.topic] == s {
		delete(b.open, s.topic)
	}
	s.started = true
	s.timer.Stop()
}

// flush sends s if nobody else has (the linger timer).
func (b *publisher) flush(s *send) {
	b.mu.Lock()
	if s.started {
		b.mu.Unlock()
		return
	}
	b.detach(s)
	b.wg.Add(1)
	b.mu.Unlock()
	b.run(s)
}

// run sends a detached batch and hands out the results.
func (b *publisher) run(s *send) {
	defer b.wg.Done()
	defer close(s.done)
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
	if len(parts) > 1 && (errors.Is(err, messaging.ErrMessageTooLarge) || errors.Is(err, messaging.ErrInvalidOption)) {
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
	var pending []*send
	for _, s := range b.open {
		b.detach(s)
		b.wg.Add(1)
		pending = append(pending, s)
	}
	b.mu.Unlock()
	for _, s := range pending {
		go b.run(s)
	}
	b.wg.Wait()
	return nil
}
