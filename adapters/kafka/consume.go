package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// Subscribe delivers topic's messages to h; see messaging.Consumer.
//
// With Group, the subscription is a member of that Kafka consumer group: the
// group's partitions are shared among its members, each partition's records
// reach one member in log order, and offsets are committed only up to the
// first record whose handler has not succeeded. A new group (no committed
// offset on a partition) starts at StartAt (default Earliest); Subscribe
// commits that starting point before it returns, so what is published
// afterwards is never missed. Without Group, the subscription reads every
// partition from StartAt (default Latest, resolved before Subscribe returns)
// and commits nothing.
//
// A handler error redelivers the message in this process after its
// RetryAfter delay, with Attempt+1; the partition's committed offset stays
// before it until it succeeds, so a crash or rebalance meanwhile redelivers
// it (Attempt then restarts at 1). Later records of the partition keep
// flowing meanwhile, so a redelivery can come after messages published
// after it.
func (c *Client) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeArgs(c.closed.Load(), topic, h, DefaultPrefetch, opts)
	if err != nil {
		return nil, err
	}
	if err := c.ensureTopic(ctx, topic, c.cfg.autoCreate); err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	var (
		cg     *kafkago.ConsumerGroup
		starts map[int]int64
	)
	if o.Group != "" {
		if err := c.initGroup(ctx, topic, o.Group, o.StartAt); err != nil {
			return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
		}
		bal := newIncarnationBalancer(func(ids []string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c.evictMembers(ctx, topic, o.Group, ids)
		})
		cg, err = kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
			ID:                     o.Group,
			Brokers:                c.brokers,
			Dialer:                 c.dialer,
			Topics:                 []string{topic},
			HeartbeatInterval:      c.cfg.heartbeatInterval,
			SessionTimeout:         c.cfg.sessionTimeout,
			RebalanceTimeout:       c.cfg.rebalanceTimeout,
			JoinGroupBackoff:       c.cfg.joinBackoff,
			WatchPartitionChanges:  true,
			PartitionWatchInterval: 5 * time.Second,
			StartOffset:            kafkago.FirstOffset,
			GroupBalancers:         groupBalancers(bal),
			ErrorLogger:            kafkago.LoggerFunc(c.logGroupError(topic, o.Group)),
		})
		if err != nil {
			return nil, fmt.Errorf("subscribe to %s: %w: %w", topic, messaging.ErrInvalidOption, err)
		}
	} else {
		parts, err := c.partitions(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
		}
		if starts, err = c.resolve(ctx, topic, parts, o.StartAt); err != nil {
			return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
		}
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		if cg != nil {
			_ = cg.Close()
		}
		return nil, err
	}
	go func() {
		if cg != nil {
			sub.Finish(c.runGroup(sub, topic, o, h, cg))
			return
		}
		s := c.newSession(sub, topic, o, h)
		for p, off := range starts {
			s.startPartition(p, off)
		}
		<-sub.FetchContext().Done()
		s.stop()
		sub.Finish(nil)
	}()
	return sub, nil
}

func (c *Client) logGroupError(topic, group string) func(string, ...any) {
	return func(format string, args ...any) {
		c.cfg.logger.Debug("kafka: consumer group: "+fmt.Sprintf(format, args...), "topic", topic, "group", group)
	}
}

// runGroup takes part in the consumer group until the subscription stops:
// each generation gets its own session (fetchers and worker pool), which is
// drained and committed before the member rejoins.
func (c *Client) runGroup(sub *dispatch.Subscription, topic string, o messaging.SubscribeOptions, h messaging.Handler, cg *kafkago.ConsumerGroup) error {
	ctx := sub.FetchContext()
	left := make(chan struct{})
	go func() {
		<-ctx.Done()
		// Closing the group ends the current generation (its session drains
		// and commits first) and leaves the group.
		_ = cg.Close()
		close(left)
	}()
	defer func() { <-left }()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return nil
			}
			c.cfg.logger.Warn("kafka: joining consumer group failed; retrying", "topic", topic, "group", o.Group, "error", err)
			continue
		}
		done := make(chan struct{})
		gen.Start(func(genCtx context.Context) {
			defer close(done)
			c.serveGeneration(genCtx, sub, topic, o, h, gen)
		})
		<-done
	}
}

// serveGeneration consumes the partitions one generation assigned until the
// generation ends (rebalance, lost session, or the group closing), then
// stops fetching, lets in-flight handlers finish, releases what was queued,
// and commits what succeeded while the generation is still valid.
func (c *Client) serveGeneration(genCtx context.Context, sub *dispatch.Subscription, topic string, o messaging.SubscribeOptions, h messaging.Handler, gen *kafkago.Generation) {
	s := c.newSession(sub, topic, o, h)
	assigned := gen.Assignments[topic]
	sort.Slice(assigned, func(i, j int) bool { return assigned[i].ID < assigned[j].ID })
	for _, a := range assigned {
		start := a.Offset
		if start < 0 {
			// No committed offset: the group's offsets expired or were
			// removed after Subscribe initialised them.
			if offs, err := c.resolve(genCtx, topic, []int{a.ID}, o.StartAt); err == nil {
				start = offs[a.ID]
			} else {
				c.cfg.logger.Warn("kafka: resolving start position failed; starting at the earliest offset", "topic", topic, "group", o.Group, "partition", a.ID, "error", err)
				start = kafkago.FirstOffset
			}
		}
		s.startPartition(a.ID, start)
	}
	c.cfg.logger.Debug("kafka: generation started", "topic", topic, "group", o.Group, "generation", gen.ID, "partitions", len(assigned))
	commit := func(final bool) {
		offsets := s.commitOffsets()
		if len(offsets) == 0 {
			return
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{topic: offsets}); err != nil {
			lvl := "kafka: commit failed; will retry"
			if final {
				lvl = "kafka: final commit of a generation failed; the next owner redelivers what was handled since the last commit"
			}
			c.cfg.logger.Warn(lvl, "topic", topic, "group", o.Group, "generation", gen.ID, "error", err)
			return
		}
		s.committed(offsets)
	}
	tick := time.NewTicker(c.cfg.commitInterval)
	defer tick.Stop()
	for ended := false; !ended; {
		select {
		case <-tick.C:
			commit(false)
		case <-genCtx.Done():
			ended = true
		}
	}
	s.stop()
	commit(true)
}

// session is one stretch of consumption: fetchers for some partitions
// feeding one worker pool. A group subscription has one per generation; an
// ephemeral one has a single session.
type session struct {
	c     *Client
	topic string
	group string
	o     messaging.SubscribeOptions
	pool  *dispatch.Pool

	ctx    context.Context // fetching and redelivery; cancelled by stop
	cancel context.CancelFunc

	fetchers sync.WaitGroup

	mu       sync.Mutex
	parts    map[int]*partState
	timers   map[*time.Timer]struct{}
	retries  sync.WaitGroup
	stopping bool

	submitMu sync.RWMutex
}

// token is a delivery's handle: where it sits in its partition's log.
type token struct {
	ps  *partState
	off int64
}

func (c *Client) newSession(sub *dispatch.Subscription, topic string, o messaging.SubscribeOptions, h messaging.Handler) *session {
	ctx, cancel := context.WithCancel(sub.FetchContext())
	s := &session{c: c, topic: topic, group: o.Group, o: o, ctx: ctx, cancel: cancel,
		parts: map[int]*partState{}, timers: map[*time.Timer]struct{}{}}
	s.pool = dispatch.NewPool(sub.HandlerContext(), o.Concurrency, o.Prefetch-o.Concurrency, h, s.settle, o.MaxAttempts)
	return s
}

func (s *session) settle(d dispatch.Delivery, r dispatch.Result) {
	tok := d.Token.(token)
	switch r.Outcome {
	case dispatch.Ack:
		tok.ps.finish(tok.off)
	case dispatch.Term:
		s.c.cfg.logger.Warn("kafka: message not redelivered", "topic", s.topic, "group", s.group, "id", d.Msg.ID, "offset", d.Msg.Offset, "attempt", d.Msg.Attempt, "error", r.Err)
		tok.ps.finish(tok.off)
	case dispatch.Nack:
		m := d.Msg.Clone()
		m.Attempt++
		s.redeliver(dispatch.Delivery{Msg: m, Token: tok}, r.Delay)
	case dispatch.Release:
		// Not handled: the offset stays uncommitted and the partition's next
		// owner (or this member, after a rejoin) fetches it again.
	}
}

// redeliver submits d again after delay, unless the session stops first (the
// offset then stays uncommitted, so the message is fetched again).
func (s *session) redeliver(d dispatch.Delivery, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || s.ctx.Err() != nil {
		// The subscription or generation is ending: leave the offset
		// uncommitted rather than hand the message to a stopping handler.
		return
	}
	s.retries.Add(1)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		defer s.retries.Done()
		s.mu.Lock()
		delete(s.timers, t)
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			return
		}
		// submitMu keeps stop from closing the pool during Submit; stop
		// cancels ctx first, so a blocked Submit returns.
		s.submitMu.RLock()
		defer s.submitMu.RUnlock()
		if s.ctx.Err() == nil {
			s.pool.Submit(s.ctx, d)
		}
	})
	s.timers[t] = struct{}{}
}

// startPartition starts fetching partition p from offset start.
func (s *session) startPartition(p int, start int64) {
	ps := &partState{partition: p, next: -1, lastCommit: -1}
	if start >= 0 {
		ps.next, ps.lastCommit = start, start
	}
	s.mu.Lock()
	s.parts[p] = ps
	s.mu.Unlock()
	s.fetchers.Add(1)
	go func() {
		defer s.fetchers.Done()
		s.c.readPartition(s.ctx, s.topic, p, start, s.o.Prefetch, func(rec *kafkago.Message) bool {
			if !ps.waitRoom(s.ctx) {
				return false
			}
			ps.fetched(rec.Offset)
			d := dispatch.Delivery{Msg: fromRecord(rec, s.group, 1), Token: token{ps: ps, off: rec.Offset}}
			return s.pool.Submit(s.ctx, d)
		})
	}()
}

// stop ends the session: no more fetching or redelivery, handlers in flight
// finish and are settled, queued deliveries are released.
func (s *session) stop() {
	s.cancel()
	s.mu.Lock()
	s.stopping = true
	for t := range s.timers {
		if t.Stop() {
			s.retries.Done()
		}
		delete(s.timers, t)
	}
	s.mu.Unlock()
	// A barrier: once submitMu is free, no redelivery is submitting any more.
	s.submitMu.Lock()
	//lint:ignore SA2001 the empty critical section is the barrier above
	s.submitMu.Unlock()
	s.fetchers.Wait()
	s.retries.Wait()
	s.pool.Close()
}

// commitOffsets returns, per partition, the offset to commit (the first one
// not yet finished) where it moved since the last commit.
func (s *session) commitOffsets() map[int]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[int]int64
	for p, ps := range s.parts {
		if off, ok := ps.commitPoint(); ok {
			if out == nil {
				out = map[int]int64{}
			}
			out[p] = off
		}
	}
	return out
}

func (s *session) committed(offsets map[int]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, off := range offsets {
		if ps := s.parts[p]; ps != nil {
			ps.setCommitted(off)
		}
	}
}

// partState tracks one partition's fetched records so that only a
// contiguous prefix of finished records is committed.
type partState struct {
	partition int

	mu         sync.Mutex
	pending    []pendingRec // fetched, in offset order; finished ones at the front are popped
	next       int64        // offset after the last fetched record (-1: unknown yet)
	lastCommit int64
	popped     chan struct{} // closed when finished records leave the front; nil when nobody waits
}

// maxUncommitted bounds how many records of one partition may be fetched
// beyond the first unfinished one: when a message keeps failing, the
// partition pauses there instead of buffering without limit.
const maxUncommitted = 10000

// waitRoom blocks while the partition has maxUncommitted records past its
// commit point; false when ctx ended first.
func (ps *partState) waitRoom(ctx context.Context) bool {
	for {
		ps.mu.Lock()
		if len(ps.pending) < maxUncommitted {
			ps.mu.Unlock()
			return true
		}
		if ps.popped == nil {
			ps.popped = make(chan struct{})
		}
		ch := ps.popped
		ps.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

type pendingRec struct {
	off  int64
	done bool
}

func (ps *partState) fetched(off int64) {
	ps.mu.Lock()
	ps.pending = append(ps.pending, pendingRec{off: off})
	ps.next = off + 1
	ps.mu.Unlock()
}

func (ps *partState) finish(off int64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	i := sort.Search(len(ps.pending), func(i int) bool { return ps.pending[i].off >= off })
	if i == len(ps.pending) || ps.pending[i].off != off {
		return
	}
	ps.pending[i].done = true
	n := 0
	for n < len(ps.pending) && ps.pending[n].done {
		n++
	}
	if n > 0 {
		if n == len(ps.pending) {
			ps.pending = ps.pending[:0]
		} else {
			ps.pending = ps.pending[n:]
		}
		if ps.popped != nil {
			close(ps.popped)
			ps.popped = nil
		}
	}
}

// commitPoint is the offset a commit should record: the first fetched record
// not finished, or the offset after the last fetched one. ok is false when
// it has not moved since the last commit or is unknown.
func (ps *partState) commitPoint() (int64, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	off := ps.next
	if len(ps.pending) > 0 {
		off = ps.pending[0].off
	}
	return off, off >= 0 && off != ps.lastCommit
}

func (ps *partState) setCommitted(off int64) {
	ps.mu.Lock()
	ps.lastCommit = off
	ps.mu.Unlock()
}

// readPartition fetches partition p of topic from offset start and hands
// each record to deliver until ctx is done or deliver returns false. Broker
// errors are retried with backoff, resuming after the last record handed
// over. deliver must not keep rec: the next record is fetched into the same
// variable (so that it is allocated once, not once per record).
func (c *Client) readPartition(ctx context.Context, topic string, p int, start int64, prefetch int, deliver func(rec *kafkago.Message) bool) {
	off := start
	bo := fastBackOff()
	var rec kafkago.Message
	for ctx.Err() == nil {
		rc := kafkago.ReaderConfig{
			QueueCapacity:  max(prefetch, 1),
			MinBytes:       1,
			MaxBytes:       max(10<<20, 2*c.cfg.maxMessageSize),
			MaxWait:        c.cfg.maxWait,
			ReadBackoffMin: 50 * time.Millisecond,
			ReadBackoffMax: time.Second,
			MaxAttempts:    5,
		}
		if c.cfg.readerTune != nil {
			c.cfg.readerTune(&rc)
		}
		rc.Brokers, rc.Topic, rc.Partition, rc.Dialer, rc.GroupID = c.brokers, topic, p, c.dialer, ""
		r := kafkago.NewReader(rc)
		err := r.SetOffset(off)
		for err == nil {
			rec, err = r.FetchMessage(ctx)
			if err != nil {
				break
			}
			bo.Reset()
			off = rec.Offset + 1
			if !deliver(&rec) {
				_ = r.Close()
				return
			}
		}
		_ = r.Close()
		if ctx.Err() != nil {
			return
		}
		wait := bo.NextBackOff()
		c.cfg.logger.Warn("kafka: fetch failed; retrying", "topic", topic, "partition", p, "offset", off, "retry_in", wait, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
