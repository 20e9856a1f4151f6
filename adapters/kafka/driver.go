package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka/internal/producer"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/retrylog"
	"github.com/msgkit/messaging/internal/unavail"
)

// This file is the consumer side of the adapter: the driver the library's
// engine runs (see package driver). A group subscription is a member of a
// Kafka consumer group (kafka-go's ConsumerGroup) whose partitions are read
// by one fetcher each; a group-less subscription and Stream.Read read every
// partition from a resolved position. Kafka has no per-message
// acknowledgement, so the driver declares BrokerAttempts false: the engine
// redelivers nacked messages itself, and a Receiver settles only Ack, Term
// and Release, which move (or, for Release, hold) the contiguous prefix of
// each partition that the group commits.

// kafkaDriver opens receivers and log readers for the client.
type kafkaDriver struct{ c *Client }

var (
	_ driver.Driver    = kafkaDriver{}
	_ driver.LogReader = kafkaDriver{}
)

func (d kafkaDriver) Capabilities() messaging.Capabilities { return d.c.Capabilities() }

// OpenReceiver makes sure the topic exists; with a group it commits the
// group's starting offsets where it has none (so nothing published from now
// on is missed) and starts joining it; without one it resolves StartAt
// (default Latest) on every partition and starts fetching.
func (d kafkaDriver) OpenReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	return onTopic(ctx, d.c, topic, func(ctx context.Context) (driver.Receiver, error) { return d.openReceiver(ctx, topic, o) })
}

// onTopic makes sure topic exists (see ensureTopic) and runs open. When
// open finds the topic missing although this client knew it, another
// client deleted it: it is forgotten and, with auto-creation on, created
// again and open run once more. While the broker cannot be reached it is
// retried, bounded as Provision is (see whileUnreachable).
func onTopic[T any](ctx context.Context, c *Client, topic string, open func(ctx context.Context) (T, error)) (T, error) {
	return unavail.RetryValue(ctx, "kafka", topic, c.cfg.unavailable, c.unreachable, func(ctx context.Context) (T, error) {
		return onTopicOnce(ctx, c, topic, open)
	})
}

// onTopicOnce is onTopic without the retries.
func onTopicOnce[T any](ctx context.Context, c *Client, topic string, open func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if err := c.ensureTopic(ctx, topic, c.cfg.autoCreate); err != nil {
		return zero, fmt.Errorf("kafka: %s: %w", topic, err)
	}
	v, err := open(ctx)
	if err == nil || !producer.TopicMissing(err) {
		return v, err
	}
	if !c.cfg.autoCreate {
		c.forgetTopic(topic)
		return v, err
	}
	if err := c.recreateTopic(ctx, topic); err != nil {
		return zero, fmt.Errorf("kafka: %s: %w", topic, err)
	}
	return open(ctx)
}

func (d kafkaDriver) openReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	c := d.c
	if o.Group == "" {
		l, err := c.openLog(ctx, topic, o.StartAt, o.Prefetch)
		if err != nil {
			return nil, err
		}
		return ephemeralReceiver{l}, nil
	}
	initial, err := c.initGroup(ctx, topic, o.Group, o.StartAt)
	if err != nil {
		return nil, fmt.Errorf("kafka: %s: %w", topic, err)
	}
	r := &groupReceiver{c: c, topic: topic, o: o, in: newInbox(o.Prefetch), done: make(chan struct{}), initial: initial}
	// The count before the first join, as initGroup just read it (from
	// kafka-go's metadata cache: at most the live count, which is all
	// watchPartitions needs).
	joined := int64(-1)
	if n, err := c.partitionCount(ctx, topic); err == nil {
		joined = int64(n)
	}
	r.joinedParts.Store(joined)
	bal := newIncarnationBalancer(func(ids []string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.evictMembers(ctx, topic, o.Group, "dropped joins", ids)
	})
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
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
		ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
			c.cfg.logger.Debug("kafka: consumer group: "+fmt.Sprintf(format, args...), "topic", topic, "group", o.Group)
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: %s: %w: %w", topic, messaging.ErrInvalidOption, err)
	}
	r.cg = cg
	r.ctx, r.stop = context.WithCancel(context.Background())
	go r.run()
	return r, nil
}

// groupReceiver is one member of a consumer group. Each generation gets its
// own fetchers and partition states; its deliveries carry a token naming
// them, so a settlement that arrives after the partition was revoked (a
// stale token) changes nothing the group commits.
type groupReceiver struct {
	c     *Client
	topic string
	o     messaging.SubscribeOptions
	cg    *kafkago.ConsumerGroup
	in    *inbox

	ctx  context.Context // ends with Close
	stop context.CancelFunc
	done chan struct{} // run returned

	// initial holds the starts initGroup resolved from StartAt but could
	// not commit (see uncommittedStarts); nil when it committed them.
	initial map[int]int64

	// joinedParts is a partition count of the topic read before the
	// member's next join (-1: unknown); see watchPartitions.
	joinedParts atomic.Int64
}

// token is a delivery's handle: where it sits in its partition's log.
type token struct {
	ps  *partState
	off int64
}

// Receive returns fetched records of the current generation, waiting for
// one; records fetched for a generation that has ended are dropped (they
// are not committed, so the partition's owner fetches them again).
func (r *groupReceiver) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	return r.in.take(ctx, n, func(d driver.Delivery) bool { return d.Token.(token).ps.gen.take() })
}

// Settle marks acknowledged and given-up records finished, so the next
// commit moves past them once every record before them is finished too. A
// released record stays unfinished: its offset is not committed, and the
// partition's next owner (another member after Close leaves the group, or
// this one after a rebalance) fetches it again.
func (r *groupReceiver) Settle(_ context.Context, batch []driver.Settlement) error {
	for _, st := range batch {
		tok := st.Token.(token)
		if st.Outcome == driver.Ack || st.Outcome == driver.Term {
			tok.ps.finish(tok.off)
		}
		tok.ps.gen.settled()
	}
	return nil
}

// Close leaves the group at once (after the final commit of the current
// generation), so its partitions go to the other members without waiting
// for the session timeout.
func (r *groupReceiver) Close(context.Context) error {
	r.stop()
	err := r.cg.Close()
	<-r.done
	return err
}

// run takes part in the group until Close, or until a join fails in a way
// joining again cannot change (see joinRetriable), which ends the
// subscription with that error. Each generation is served by serve, which
// returns (so the member rejoins) once the generation ended and its
// deliveries were settled.
func (r *groupReceiver) run() {
	var leaving sync.WaitGroup
	defer func() {
		leaving.Wait()
		close(r.done)
	}()
	member := "" // the member ID of the last generation, until kafka-go drops it
	// The failed joins since the last generation (logged as a run).
	var failing retrylog.Run
	for {
		gen, err := r.cg.Next(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			if errors.Is(err, kafkago.UnknownTopicOrPartition) && r.failIfGone() {
				return
			}
			if member != "" && !errors.Is(err, kafkago.RebalanceInProgress) {
				// kafka-go rejoins as a new member after every other
				// error, and its own LeaveGroup for the old member
				// failed if the connection is what broke. Until that
				// old member leaves or its session times out, the
				// coordinator's next rebalance waits for it; so leave
				// on its behalf as soon as the coordinator is
				// reachable again (see Recovery in the package doc).
				old := member
				leaving.Go(func() { r.leaveAbandoned(old) })
			}
			member = ""
			if !joinRetriable(err) {
				r.in.fail(fmt.Errorf("kafka: %s: joining consumer group %s: %w", r.topic, r.o.Group, err))
				return
			}
			failing.Failed(r.c.cfg.logger, "kafka: joining consumer group failed; retrying", "topic", r.topic, "group", r.o.Group, "error", err)
			continue
		}
		failing.Succeeded(r.c.cfg.logger, "kafka: joined consumer group", "topic", r.topic, "group", r.o.Group)
		member = gen.MemberID
		ended := make(chan struct{})
		joinedParts := r.joinedParts.Load()
		gen.Start(func(genCtx context.Context) {
			defer close(ended)
			r.serve(genCtx, gen)
		})
		gen.Start(func(genCtx context.Context) { r.watchPartitions(genCtx, joinedParts) })
		<-ended
	}
}

// partitionWatchInterval is how often a group member compares the topic's
// partition count with the one it joined with (watchPartitions).
const partitionWatchInterval = 5 * time.Second

// watchPartitions ends the generation (so the member joins again and the
// group rebalances) once the topic's partition count, checked every
// partitionWatchInterval, exceeds joined, a count read before the member
// joined (-1: unknown, which ends it at the first count read).
//
// kafka-go's own partition watcher (WatchPartitionChanges, kept for its
// reaction to a lost coordinator connection) compares with the count it
// reads once the generation started, after the leader read the partitions
// it assigned: partitions added in between were never assigned, it never
// noticed them, and the records written to them were not delivered until
// some other rebalance (segmentio/kafka-go#1314). A count read before the
// join is at most the one the assignment used (the leader reads it once
// every member joined, and partitions are only ever added). The count that
// ends a generation is the next one's joined (r.joinedParts), read before
// that generation's join; a generation that ends otherwise leaves joined as
// it was, still a count from before the join. So no read holds up the
// rejoin when a generation ends (a broker that does not answer would hold
// it up to 5s), and partitions added since the last read cost one more
// rebalance.
func (r *groupReceiver) watchPartitions(genCtx context.Context, joined int64) {
	t := time.NewTicker(partitionWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-genCtx.Done():
			return
		case <-t.C:
		}
		// Partitions are only ever added: a lower count (no answer, a
		// broker that does not know the topic or not all of it yet, as in
		// a failover) says nothing.
		n := int64(r.c.livePartitionCount(genCtx, r.topic))
		if n <= joined {
			continue
		}
		r.joinedParts.Store(n)
		r.c.cfg.logger.Debug("kafka: the topic has more partitions than when the member joined; rebalancing", "topic", r.topic, "group", r.o.Group, "joined_with", joined, "partitions", n)
		return
	}
}

// joinRetriable reports whether a group error may go away by joining
// again: a failed connection (any error that is not a Kafka error code), a
// temporary error code (coordinator not available, loading or moved, a
// request timeout, ...; see kafkago.Error.Temporary) or one that a new
// join resolves (a rebalance in progress, an unknown member ID, an illegal
// generation). Every other code (an invalid session timeout, an
// inconsistent group protocol, a group authorization failure, a full
// group, ...) is refused again on every join, and ends the subscription.
func joinRetriable(err error) bool {
	var kerr kafkago.Error
	if !errors.As(err, &kerr) {
		return true
	}
	switch kerr {
	case kafkago.RebalanceInProgress, kafkago.UnknownMemberId, kafkago.IllegalGeneration:
		return true
	}
	return kerr.Temporary()
}

// leaveAbandoned removes member, an ID kafka-go gave up after a group
// error, from the group: it retries LeaveGroup every 250ms at most until it
// succeeds, the coordinator no longer knows the member, the session timeout
// has passed (the coordinator has dropped it by then) or Close.
func (r *groupReceiver) leaveAbandoned(member string) {
	ctx, cancel := context.WithTimeout(r.ctx, r.c.cfg.sessionTimeout)
	defer cancel()
	r.c.evictMembers(ctx, r.topic, r.o.Group, "a group error (kafka-go rejoined as a new member)", []string{member})
}

// failIfGone ends the subscription with ErrTopicDeleted when its topic no
// longer exists.
func (r *groupReceiver) failIfGone() bool {
	if !r.c.topicGone(r.ctx, r.topic) {
		return false
	}
	r.in.fail(fmt.Errorf("kafka: %w", messaging.ErrTopicDeleted))
	return true
}

// serve consumes the partitions one generation assigned and commits their
// finished prefixes every commit interval. When the generation ends
// (rebalance, lost session, Close), it stops fetching, waits for the
// deliveries handed out to be settled (at most half the rebalance timeout,
// so a stuck handler does not get the member evicted) and commits once
// more while the generation is still valid.
func (r *groupReceiver) serve(genCtx context.Context, gen *kafkago.Generation) {
	c, topic := r.c, r.topic
	g := &generation{drained: make(chan struct{})}
	fetchCtx, cancel := context.WithCancel(genCtx)
	var wg sync.WaitGroup
	assigned := gen.Assignments[topic]
	sort.Slice(assigned, func(i, j int) bool { return assigned[i].ID < assigned[j].ID })
	if len(assigned) == 0 && r.failIfGone() {
		cancel()
		return
	}
	starts := r.uncommittedStarts(genCtx, assigned)
	parts := make(map[int]*partState, len(assigned))
	for _, a := range assigned {
		start := a.Offset
		if start < 0 {
			start = starts[a.ID]
		}
		ps := &partState{gen: g, next: -1, lastCommit: -1}
		if start >= 0 {
			ps.next = start
			if a.Offset >= 0 {
				ps.lastCommit = start
			} // else the first commit records the resolved start
		}
		parts[a.ID] = ps
		wg.Go(func() {
			err := c.readPartition(fetchCtx, topic, a.ID, start, r.o.Prefetch, func(rec *kafkago.Message) bool {
				if !ps.waitRoom(fetchCtx) {
					return false
				}
				ps.fetched(rec.Offset)
				// Lease: a message the engine holds for a RetryAfter delay
				// is released when the generation ends, so a rebalance
				// does not wait out the delay (see the drain below).
				return r.in.put(fetchCtx, driver.Delivery{Msg: fromRecord(rec, r.o.Group, 1), Token: token{ps: ps, off: rec.Offset}, Lease: genCtx})
			})
			if err != nil {
				r.in.fail(err)
			}
		})
	}
	c.cfg.logger.Debug("kafka: generation started", "topic", topic, "group", r.o.Group, "generation", gen.ID, "partitions", len(assigned))
	commit := func(final bool) {
		offsets := map[int]int64{}
		for p, ps := range parts {
			if off, ok := ps.commitPoint(); ok {
				offsets[p] = off
			}
		}
		if len(offsets) == 0 {
			return
		}
		err := gen.CommitOffsets(map[string]map[int]int64{topic: offsets})
		if final && err != nil && !isKafkaError(err) {
			err = r.commitAgain(gen, offsets, err)
		}
		if err != nil {
			if errors.Is(err, kafkago.UnknownTopicOrPartition) && r.failIfGone() {
				return
			}
			msg := "kafka: commit failed; will retry"
			if final {
				msg = "kafka: final commit of a generation failed; the next owner redelivers what was handled since the last commit"
			}
			c.cfg.logger.Warn(msg, "topic", topic, "group", r.o.Group, "generation", gen.ID, "error", err)
			return
		}
		for p, off := range offsets {
			parts[p].setCommitted(off)
		}
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
	cancel()
	wg.Wait()
	if g.end() {
		t := time.NewTimer(c.cfg.rebalanceTimeout / 2)
		select {
		case <-g.drained:
		case <-t.C:
			c.cfg.logger.Warn("kafka: handlers still running when the partitions were revoked; their messages may be delivered twice", "topic", topic, "group", r.o.Group, "generation", gen.ID)
		}
		t.Stop()
	}
	commit(true)
}

// uncommittedStarts resolves where the assigned partitions without a
// committed offset start. OpenReceiver committed a start on every
// partition the topic had then, so a partition without one was added to
// the topic later (or its offset was removed): when the group has an offset
// on another partition of the topic, it starts at its earliest record, so
// nothing written to it before this rebalance is lost. When the group has
// none (its offsets expired or were removed since OpenReceiver, or
// OpenReceiver could not commit because the group had members, consuming
// other topics), it is a new group again and starts at StartAt: at the
// start OpenReceiver resolved when it has one (r.initial), so nothing
// published after Subscribe returned is skipped. A partition whose start
// cannot be resolved starts at its earliest record. serve commits these
// starts at its first commit, so that a later rebalance does not resolve
// them again (a Latest start would then skip what was published in
// between).
func (r *groupReceiver) uncommittedStarts(ctx context.Context, assigned []kafkago.PartitionAssignment) map[int]int64 {
	c, topic := r.c, r.topic
	var missing []int
	for _, a := range assigned {
		if a.Offset < 0 {
			missing = append(missing, a.ID)
		}
	}
	starts := make(map[int]int64, len(missing))
	if len(missing) == 0 {
		return starts
	}
	for _, p := range missing {
		starts[p] = kafkago.FirstOffset
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	from := messaging.Earliest
	parts, err := c.partitions(ctx, topic)
	var have map[int]bool
	if err == nil {
		have, err = c.committed(ctx, topic, r.o.Group, parts)
	}
	fresh := err == nil && len(have) == 0 // a new group on topic
	if fresh {
		from = r.o.StartAt
	}
	if err != nil {
		c.cfg.logger.Warn("kafka: fetching the group's offsets failed; starting partitions without one at the earliest offset", "topic", topic, "group", r.o.Group, "partitions", missing, "error", err)
	}
	// The starts OpenReceiver resolved need no resolving again.
	unresolved := missing[:0:0]
	for _, p := range missing {
		if off, ok := r.initial[p]; ok && fresh {
			starts[p] = off
		} else {
			unresolved = append(unresolved, p)
		}
	}
	if len(unresolved) == 0 {
		return starts
	}
	offs, err := c.resolve(ctx, topic, unresolved, from)
	if err != nil {
		c.cfg.logger.Warn("kafka: resolving start position failed; starting at the earliest offset", "topic", topic, "group", r.o.Group, "partitions", unresolved, "error", err)
	}
	for p, off := range offs {
		starts[p] = off
	}
	return starts
}

// commitAgain retries a generation's final commit that failed on its
// connection (a cut, a broker restart) on new connections, every 250ms at
// most, for up to half the rebalance timeout (and at most the session
// timeout): the coordinator keeps the member and its generation until its
// session times out, so once it is reachable again the commit lands and
// the next owner does not redeliver what was handled since the last one.
// A Kafka error (the generation is over, the member unknown) ends it. It
// returns the last error, nil once committed.
func (r *groupReceiver) commitAgain(gen *kafkago.Generation, offsets map[int]int64, err error) error {
	ctx, cancel := context.WithTimeout(r.ctx, min(r.c.cfg.rebalanceTimeout/2, r.c.cfg.sessionTimeout))
	defer cancel()
	commits := make([]kafkago.OffsetCommit, 0, len(offsets))
	for p, off := range offsets {
		commits = append(commits, kafkago.OffsetCommit{Partition: p, Offset: off})
	}
	req := &kafkago.OffsetCommitRequest{
		GroupID: r.o.Group, GenerationID: int(gen.ID), MemberID: gen.MemberID,
		Topics: map[string][]kafkago.OffsetCommit{r.topic: commits},
	}
	bo := fastBackOff()
	bo.MaxInterval = 250 * time.Millisecond
	_, retryErr := backoff.Retry(ctx, func() (struct{}, error) {
		callCtx, cancelCall := context.WithTimeout(ctx, 2*time.Second)
		defer cancelCall()
		resp, err := r.c.admin.OffsetCommit(callCtx, req)
		if err != nil {
			return struct{}{}, err
		}
		for _, p := range resp.Topics[r.topic] {
			if p.Error != nil {
				return struct{}{}, backoff.Permanent(p.Error)
			}
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0))
	if retryErr != nil && ctx.Err() != nil {
		return err // never reachable: report the original failure
	}
	return retryErr
}

// isKafkaError reports whether err is an error code a broker answered with
// (as opposed to a failed connection).
func isKafkaError(err error) bool {
	var kerr kafkago.Error
	return errors.As(err, &kerr)
}

// generation counts the deliveries one generation handed to the engine and
// that are not settled yet.
type generation struct {
	mu      sync.Mutex
	out     int
	ended   bool
	drained chan struct{} // closed when ended and out is 0
}

// take counts a delivery handed out; false once the generation ended.
func (g *generation) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return false
	}
	g.out++
	return true
}

func (g *generation) settled() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.out--
	if g.ended && g.out == 0 {
		close(g.drained)
	}
}

// end stops handing out deliveries; true while some are not settled yet
// (drained is closed when the last one is).
func (g *generation) end() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended = true
	if g.out == 0 {
		close(g.drained)
		return false
	}
	return true
}

// partState tracks one partition's fetched records in one generation so
// that only a contiguous prefix of finished records is committed.
type partState struct {
	gen *generation

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

// inbox carries fetched deliveries from the partition fetchers to Receive
// (or Next), and the error that ends the subscription.
type inbox struct {
	ch     chan driver.Delivery
	failed chan struct{}
	once   sync.Once
	err    error
	out    []driver.Delivery // what take returned last, reused (see driver.Receiver); its one taker's
}

func newInbox(size int) *inbox {
	return &inbox{ch: make(chan driver.Delivery, max(size, 1)), failed: make(chan struct{})}
}

// put hands d over; false when ctx ended first.
func (b *inbox) put(ctx context.Context, d driver.Delivery) bool {
	select {
	case b.ch <- d:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail makes take return err (the first one given).
func (b *inbox) fail(err error) {
	b.once.Do(func() {
		b.err = err
		close(b.failed)
	})
}

// take returns between 1 and n deliveries that keep accepts (nil: all),
// waiting for the first until ctx ends or the inbox fails. It returns them
// in the array of the last call's, which the caller must have copied out:
// an inbox has one taker.
func (b *inbox) take(ctx context.Context, n int, keep func(driver.Delivery) bool) ([]driver.Delivery, error) {
	clear(b.out)
	out := b.out[:0]
	for len(out) == 0 {
		select {
		case d := <-b.ch:
			if keep == nil || keep(d) {
				out = append(out, d)
			}
		case <-b.failed:
			return nil, b.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for len(out) < n {
		select {
		case d := <-b.ch:
			if keep == nil || keep(d) {
				out = append(out, d)
			}
			continue
		default:
		}
		break
	}
	b.out = out
	return out, nil
}

// partitionReader reads every partition of a topic from resolved offsets,
// without a group and without committing: a group-less subscription and
// Stream.Read.
type partitionReader struct {
	in     *inbox
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// openLog resolves from on every partition of topic and starts fetching.
func (c *Client) openLog(ctx context.Context, topic string, from messaging.Position, prefetch int) (*partitionReader, error) {
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: %s: %w", topic, err)
	}
	starts, err := c.resolve(ctx, topic, parts, from)
	if err != nil {
		return nil, fmt.Errorf("kafka: %s: %w", topic, err)
	}
	fetchCtx, cancel := context.WithCancel(context.Background())
	l := &partitionReader{in: newInbox(prefetch), cancel: cancel}
	for p, off := range starts {
		l.wg.Go(func() {
			err := c.readPartition(fetchCtx, topic, p, off, prefetch, func(rec *kafkago.Message) bool {
				return l.in.put(fetchCtx, driver.Delivery{Msg: fromRecord(rec, "", 1)})
			})
			if err != nil {
				l.in.fail(err)
			}
		})
	}
	l.wg.Go(func() { c.watchTopic(fetchCtx, topic, l.in) })
	return l, nil
}

// topicWatchInterval is how often a reader without a group checks that its
// topic still exists (kafka-go's reader retries a deleted topic's fetches
// without end; a group learns of the deletion from its partition watcher).
const topicWatchInterval = 5 * time.Second

// watchTopic fails in with ErrTopicDeleted once topic no longer exists.
func (c *Client) watchTopic(ctx context.Context, topic string, in *inbox) {
	t := time.NewTicker(topicWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.topicGone(ctx, topic) {
			in.fail(fmt.Errorf("kafka: %w", messaging.ErrTopicDeleted))
			return
		}
	}
}

func (l *partitionReader) close() {
	l.cancel()
	l.wg.Wait()
}

// ephemeralReceiver is a group-less subscription: nothing to settle.
type ephemeralReceiver struct{ l *partitionReader }

func (r ephemeralReceiver) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	return r.l.in.take(ctx, n, nil)
}

func (ephemeralReceiver) Settle(context.Context, []driver.Settlement) error { return nil }

func (r ephemeralReceiver) Close(context.Context) error {
	r.l.close()
	return nil
}

// OpenLog positions a reader of topic's log at from (see Client.Read).
func (d kafkaDriver) OpenLog(ctx context.Context, topic string, from messaging.Position) (driver.Log, error) {
	c := d.c
	if from.Kind == messaging.PositionAtOffset || from.Kind == messaging.PositionAfterOffset {
		if _, err := parseOffsets(from.Offset); err != nil {
			return nil, err
		}
	}
	return onTopic(ctx, c, topic, func(ctx context.Context) (driver.Log, error) {
		l, err := c.openLog(ctx, topic, from, logBatch)
		if err != nil {
			return nil, err
		}
		return logReader{l}, nil
	})
}

// logBatch is the most records Log.Next returns at once.
const logBatch = 256

type logReader struct{ l *partitionReader }

// Next returns the records fetched so far, waiting for one. Records of one
// partition come in log order; partitions interleave.
func (r logReader) Next(ctx context.Context) ([]*messaging.Message, error) {
	ds, err := r.l.in.take(ctx, logBatch, nil)
	msgs := make([]*messaging.Message, len(ds))
	for i, d := range ds {
		msgs[i] = d.Msg
	}
	return msgs, err
}

func (r logReader) Close() error {
	r.l.close()
	return nil
}

// readPartition fetches partition p of topic from offset start and hands
// each record to deliver until ctx is done or deliver returns false. Broker
// errors are retried with backoff, resuming after the last record handed
// over; it returns an error wrapping messaging.ErrTopicDeleted when a
// failed fetch finds the topic gone. deliver must not keep rec: the next
// record is fetched into the same variable (so that it is allocated once,
// not once per record).
func (c *Client) readPartition(ctx context.Context, topic string, p int, start int64, prefetch int, deliver func(rec *kafkago.Message) bool) error {
	off := start
	bo := fastBackOff()
	var failing retrylog.Run // failed fetches since the last record
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
			if failing.Failing() { // checked first: the arguments would be boxed for every record
				failing.Succeeded(c.cfg.logger, "kafka: fetch resumed", "topic", topic, "partition", p, "offset", rec.Offset)
				bo.Reset()
			}
			off = rec.Offset + 1
			if !deliver(&rec) {
				c.closeReader(r)
				return nil
			}
		}
		c.closeReader(r)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, kafkago.UnknownTopicOrPartition) && c.topicGone(ctx, topic) {
			return fmt.Errorf("kafka: partition %d: %w: %w", p, messaging.ErrTopicDeleted, err)
		}
		wait := bo.NextBackOff()
		failing.Failed(c.cfg.logger, "kafka: fetch failed; retrying", "topic", topic, "partition", p, "offset", off, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// closeReader closes r in the background: a fetch in flight (a long poll
// of up to MaxWait) holds Reader.Close, and a stopping subscription need
// not wait for it. Client.Close waits for these closes.
func (c *Client) closeReader(r *kafkago.Reader) {
	c.readers.Go(func() { _ = r.Close() })
}

// livePartitionCount returns the partition count of topic as a broker
// answers it directly (kafka-go's transport answers from a cache), 0 when
// the topic does not exist, -1 when no broker answered within 5s or before
// ctx ended.
func (c *Client) livePartitionCount(ctx context.Context, topic string) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, b := range c.brokers {
		conn, err := c.dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			continue
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // the conn honours no context
		parts, err := conn.ReadPartitions(topic)
		stop()
		_ = conn.Close()
		switch {
		case errors.Is(err, kafkago.UnknownTopicOrPartition):
			return 0
		case err != nil:
			return -1
		}
		return len(parts)
	}
	return -1
}

// topicGone reports whether the brokers say topic does not exist (see
// livePartitionCount: kafka-go's transport answers metadata requests from a
// cache that still lists a deleted topic); an unreachable broker means no.
func (c *Client) topicGone(ctx context.Context, topic string) bool {
	return c.livePartitionCount(ctx, topic) == 0
}
