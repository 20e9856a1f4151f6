package redis

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// Limits of one round trip.
const (
	maxReadCount  = 256 // entries per XREADGROUP / XAUTOCLAIM of Subscribe (SubscribeBatch: BatchSize)
	maxSettleOps  = 512 // settle operations per batch
	maxScriptIDs  = 300 // entries per claimOwnScript call
	settleTimeout = 30 * time.Second
)

// Subscribe delivers topic's messages to h; see messaging.Consumer.
//
// With a Group option the subscription is a consumer of that Redis consumer
// group (created with MKSTREAM at StartAt when it does not exist), named
// uniquely, reading with XREADGROUP; see the package documentation for
// acknowledgement, redelivery and attempt counting. Without a Group option
// it reads the stream with XREAD from StartAt (default Latest); such an
// ephemeral subscription keeps no state in Redis, and redelivers a failed
// message only in process.
func (c *Client) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeArgs(c.closed.Load(), topic, h, DefaultPrefetch, opts)
	if err != nil {
		return nil, err
	}
	return c.subscribe(ctx, topic, o, mode{
		limit: o.Prefetch,
		want:  max(o.Prefetch/2, 1), // reads stay large rather than trickling one entry per round trip
		count: maxReadCount,
		runner: func(hctx context.Context, settle dispatch.SettleFunc, _ int) runner {
			return newPoolRunner(hctx, h, settle, o)
		},
	})
}

// subscribe is Subscribe and SubscribeBatch once the arguments are checked:
// m says how entries are read and handled.
func (c *Client) subscribe(ctx context.Context, topic string, o messaging.SubscribeOptions, m mode) (messaging.Subscription, error) {
	start, err := exclusiveStart(o.StartAt)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if sfx := c.cfg.deadLetterSuffix; sfx != "" && o.Group != "" {
		if err := messaging.ValidateName(topic + sfx); err != nil {
			return nil, fmt.Errorf("subscribe: dead-letter topic %q: %w", topic+sfx, errors.Join(messaging.ErrInvalidOption, err))
		}
	}
	key := c.StreamKey(topic)
	if o.Group == "" {
		return c.subscribeEphemeral(ctx, topic, key, start, m)
	}
	if err := c.ensureGroup(ctx, key, o.Group, start); err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	g := &groupSub{
		c: c, rc: c.rc, log: c.cfg.logger,
		topic: topic, key: key, group: o.Group, consumer: consumerName(), o: o, m: m,
		ackMs:   max(o.AckDeadline.Milliseconds(), 1),
		ops:     make(chan settleOp, 2*m.limit),
		room:    make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		cursor:  "0-0",
		holding: map[string]struct{}{},
		delayed: map[string]time.Time{},
	}
	g.sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(g.sub) })
	if err := c.subs.Add(g.sub); err != nil {
		return nil, err
	}
	g.handlers = m.runner(g.sub.HandlerContext(), g.settle, 0)
	go g.run()
	return g.sub, nil
}

// consumerName returns a name no other subscription uses: host, process and
// a random part, so XINFO CONSUMERS shows where a consumer runs.
func consumerName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
}

// groupSub is one consumer of a consumer group.
//
// Three goroutines serve it: fetch (XREADGROUP of new entries), maintain
// (XAUTOCLAIM of entries idle past the ack deadline, deadline extension of
// held entries, delayed nacks, stale consumer cleanup) and settle (batched
// XACK and re-claims). fetch and maintain hand what each read returned, as
// one slice, to the runner: the worker pool of Subscribe or the batch
// runner of SubscribeBatch, which call settle with each message's result.
type groupSub struct {
	c        *Client
	rc       goredis.UniversalClient
	log      *slog.Logger
	topic    string
	key      string
	group    string
	consumer string
	o        messaging.SubscribeOptions
	m        mode
	ackMs    int64
	sub      *dispatch.Subscription
	handlers runner
	ops      chan settleOp
	room     chan struct{} // signalled when holding shrinks
	kick     chan struct{} // signalled when the earliest due moves earlier
	cursor   string        // XAUTOCLAIM scan position, used by maintain only

	// settleMu orders settlements against reclaim and touch (see there).
	settleMu sync.Mutex

	mu      sync.Mutex
	holding map[string]struct{}  // fetched, settlement not yet in Redis: deadline extended
	delayed map[string]time.Time // nacked with a delay beyond the ack deadline: due time
	dues    dueTimes             // when nacked entries become claimable
}

type opKind int

const (
	opAck opKind = iota
	opTerm
	opNack
	opRelease
)

// settleOp is one settle operation for the settle goroutine.
type settleOp struct {
	kind  opKind
	id    string
	msg   *messaging.Message
	delay time.Duration
	err   error
}

func (g *groupSub) run() {
	ctx := g.sub.FetchContext()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- g.fetch(ctx) })
	wg.Go(func() { errs <- g.maintain(ctx) })
	settled := make(chan struct{})
	go func() { g.settler(); close(settled) }()
	first := <-errs
	g.sub.Stop()
	wg.Wait()
	if second := <-errs; first == nil || isCtxErr(first) {
		first = second
	}
	// Handlers still running keep their deadline extended while Close
	// waits for them.
	drained := make(chan struct{})
	touching := make(chan struct{})
	go func() {
		defer close(touching)
		t := time.NewTicker(max(g.o.AckDeadline/3, 50*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-drained:
				return
			case <-t.C:
				_ = g.touch(context.Background())
			}
		}
	}()
	g.handlers.close()
	close(drained)
	<-touching
	close(g.ops)
	<-settled
	g.finalRelease()
	g.sub.Finish(first)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// hold records fetched entries; the deadline of held entries is extended
// until they are settled.
func (g *groupSub) hold(id string) {
	g.mu.Lock()
	g.holding[id] = struct{}{}
	g.mu.Unlock()
}

func (g *groupSub) holds(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.holding[id]
	return ok
}

func (g *groupSub) unhold(id string) {
	g.mu.Lock()
	delete(g.holding, id)
	g.mu.Unlock()
	select {
	case g.room <- struct{}{}:
	default:
	}
}

// free is how many more entries may be fetched now.
func (g *groupSub) free() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m.limit - len(g.holding)
}

// waitFree waits until the mode's minimum room is free and returns how many
// entries to read.
func (g *groupSub) waitFree(ctx context.Context) (int, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if n := g.free(); n >= g.m.want {
			return min(n, g.m.count), nil
		}
		select {
		case <-g.room:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// fatal reports whether err ends the subscription instead of being retried.
func (g *groupSub) fatal(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, goredis.ErrClosed):
		return g.c.opError("read "+g.topic, err)
	case strings.HasPrefix(msg, "NOGROUP"), strings.HasPrefix(msg, "UNBLOCKED"):
		return fmt.Errorf("redis: read %s: group %s or its stream no longer exists (topic deleted?): %w", g.topic, g.group, err)
	}
	return nil
}

// retry waits before the next attempt after a transient error.
func retry(ctx context.Context, b *backoff.ExponentialBackOff) error {
	t := time.NewTimer(b.NextBackOff())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	return b
}

// fetch reads new entries with XREADGROUP and hands each read's entries to
// the runner. With m.fill (SubscribeBatch) a read that returned fewer
// entries than asked is followed by reads blocking for the rest of m.fill,
// and all of them are handed over as one batch.
func (g *groupSub) fetch(ctx context.Context) error {
	bo := newBackoff()
	for {
		n, err := g.waitFree(ctx)
		if err != nil {
			return err
		}
		ds, err := g.read(ctx, n, g.c.cfg.block)
		if err != nil {
			if ferr := g.fatal(err); ferr != nil {
				return ferr
			}
			g.log.Warn("redis: XREADGROUP failed; retrying", "topic", g.topic, "group", g.group, "error", err)
			if err := retry(ctx, bo); err != nil {
				return err
			}
			continue
		}
		bo.Reset()
		ds = fill(ctx, ds, n, g.m.fill, func(count int, block time.Duration) ([]dispatch.Delivery, error) {
			return g.read(ctx, count, block)
		})
		if !g.deliver(ctx, ds) {
			return ctx.Err()
		}
	}
}

// read runs one XREADGROUP for up to count new entries, blocking up to
// block, and holds what it returns.
func (g *groupSub) read(ctx context.Context, count int, block time.Duration) ([]dispatch.Delivery, error) {
	args := &goredis.XReadGroupArgs{Group: g.group, Consumer: g.consumer, Streams: []string{g.key, ">"}, Count: int64(count), Block: block}
	// Not cancelled with ctx: entries the read returns are this consumer's
	// now, so the reply must be seen to release them.
	res, err := g.rc.XReadGroup(context.WithoutCancel(ctx), args).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ds []dispatch.Delivery
	for _, s := range res {
		for _, x := range s.Messages {
			g.hold(x.ID)
			m := decodeMap(g.topic, x.ID, x.Values)
			m.Group, m.Attempt = g.group, 1 // a new entry's delivery counter is 1
			ds = append(ds, dispatch.Delivery{Msg: m, Token: x.ID})
		}
	}
	return ds, nil
}

// deliver hands held entries to the runner; if ctx ends first it releases
// those not taken and returns false.
func (g *groupSub) deliver(ctx context.Context, ds []dispatch.Delivery) bool {
	if len(ds) == 0 {
		return true
	}
	n := g.handlers.submit(ctx, ds)
	for _, d := range ds[n:] {
		g.settle(d, dispatch.Result{Outcome: dispatch.Release})
	}
	return n == len(ds)
}

// maintain runs the periodic work: reclaiming, extending deadlines, due
// nacks and stale consumer cleanup.
func (g *groupSub) maintain(ctx context.Context) error {
	ack := g.o.AckDeadline
	reclaimEvery := min(max(ack/4, 100*time.Millisecond), 5*time.Second)
	touchEvery := max(ack/3, 50*time.Millisecond)
	cleanupEvery := max(g.c.cfg.staleConsumerAfter/2, time.Second)
	now := time.Now()
	nextReclaim, nextTouch, nextCleanup := now, now.Add(touchEvery), now
	timer := time.NewTimer(0)
	defer timer.Stop()
	bo := newBackoff()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now = time.Now()
		var err error
		if !now.Before(nextCleanup) {
			g.cleanup(ctx)
			nextCleanup = now.Add(cleanupEvery)
		}
		if !now.Before(nextTouch) {
			err = errors.Join(err, g.touch(ctx))
			nextTouch = now.Add(touchEvery)
		}
		if due := g.takeDue(now); due || !now.Before(nextReclaim) {
			err = errors.Join(err, g.reclaim(ctx))
			nextReclaim = time.Now().Add(reclaimEvery)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if ferr := g.fatal(err); ferr != nil {
				return ferr
			}
			g.log.Warn("redis: group maintenance failed; retrying", "topic", g.topic, "group", g.group, "error", err)
			if err := retry(ctx, bo); err != nil {
				return err
			}
			nextReclaim = time.Now()
			continue
		}
		bo.Reset()
		wake := min(nextReclaim.UnixMilli(), nextTouch.UnixMilli(), nextCleanup.UnixMilli(), g.nextDue())
		timer.Reset(time.Until(time.UnixMilli(wake)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-g.kick:
		}
	}
}

// scheduleDues makes maintain reclaim when the entries whose idle time
// was just set (the script has replied) become claimable, in's durations
// from now. The server set the idle times before its reply, so they are
// claimable by then.
func (g *groupSub) scheduleDues(in []time.Duration) {
	if len(in) == 0 {
		return
	}
	now := time.Now()
	slices.Sort(in)
	g.mu.Lock()
	earliest := g.nextDueLocked()
	for _, d := range slices.Compact(in) {
		// Rounded up to the millisecond maintain's timer uses.
		due := now.Add(d)
		ms := due.UnixMilli()
		if due.After(time.UnixMilli(ms)) {
			ms++
		}
		heap.Push(&g.dues, ms)
	}
	earlier := g.nextDueLocked() < earliest
	g.mu.Unlock()
	if earlier {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

// nextDue is the unix ms of the earliest scheduled reclaim, or MaxInt64.
func (g *groupSub) nextDue() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.nextDueLocked()
}

func (g *groupSub) nextDueLocked() int64 {
	if len(g.dues) == 0 {
		return math.MaxInt64
	}
	return g.dues[0]
}

// takeDue reports whether a scheduled reclaim is due, and clears those that
// are.
func (g *groupSub) takeDue(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms, due := now.UnixMilli(), false
	for len(g.dues) > 0 && g.dues[0] <= ms {
		heap.Pop(&g.dues)
		due = true
	}
	return due
}

// dueTimes is a min-heap of unix milliseconds at which nacked entries
// become claimable.
type dueTimes []int64

func (h dueTimes) Len() int           { return len(h) }
func (h dueTimes) Less(i, j int) bool { return h[i] < h[j] }
func (h dueTimes) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueTimes) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *dueTimes) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// reclaim claims entries idle for longer than the ack deadline (their
// consumer died, hung, or nacked them) and hands each claim's entries to the
// runner (one batch for SubscribeBatch). Attempt is the entry's delivery
// counter, which XAUTOCLAIM incremented.
func (g *groupSub) reclaim(ctx context.Context) error {
	for range 100 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := g.free()
		if n <= 0 {
			return nil
		}
		// Under settleMu, so that no settlement is half done (re-claimed
		// with its final idle time but still held) while Redis hands out
		// idle entries, and what is claimed is held before it unlocks.
		g.settleMu.Lock()
		res, err := reclaimScript.Run(context.WithoutCancel(ctx), g.rc, []string{g.key}, g.group, g.consumer, g.ackMs, g.cursor, min(n, g.m.count)).Slice()
		if err != nil {
			g.settleMu.Unlock()
			return err
		}
		next, entries, err := parseReclaim(res)
		if err != nil {
			g.settleMu.Unlock()
			return err
		}
		fresh := entries[:0]
		for _, e := range entries {
			if g.holds(e.id) {
				// Still queued or being handled here (its idle time grew
				// while Redis was unreachable): do not run it twice.
				continue
			}
			g.hold(e.id)
			fresh = append(fresh, e)
		}
		g.settleMu.Unlock()
		ds := make([]dispatch.Delivery, 0, len(fresh))
		for _, e := range fresh {
			m := decodeList(g.topic, e.id, e.fields)
			m.Group, m.Attempt = g.group, int(e.count)
			d := dispatch.Delivery{Msg: m, Token: m.Offset}
			if g.o.MaxAttempts > 0 && m.Attempt > g.o.MaxAttempts {
				// The ack deadline passed on the last allowed attempt.
				g.settle(d, dispatch.Result{
					Outcome: dispatch.Term,
					Err:     fmt.Errorf("giving up after %d attempts: ack deadline passed", m.Attempt-1),
				})
				continue
			}
			ds = append(ds, d)
		}
		if !g.deliver(ctx, ds) {
			return ctx.Err()
		}
		g.cursor = next
		if next == "0-0" {
			return nil
		}
	}
	return nil
}

type claimed struct {
	id     string
	fields []any
	count  int64
}

func parseReclaim(res []any) (string, []claimed, error) {
	bad := fmt.Errorf("redis: unexpected reclaim script reply %v", res)
	if len(res) != 2 {
		return "", nil, bad
	}
	next, ok := res[0].(string)
	list, ok2 := res[1].([]any)
	if !ok || !ok2 {
		return "", nil, bad
	}
	out := make([]claimed, 0, len(list))
	for _, x := range list {
		e, ok := x.([]any)
		if !ok || len(e) != 3 {
			return "", nil, bad
		}
		id, _ := e[0].(string)
		fields, _ := e[1].([]any)
		count, _ := e[2].(int64)
		out = append(out, claimed{id: id, fields: fields, count: max(count, 1)})
	}
	return next, out, nil
}

// touch extends the ack deadline of the entries this subscription holds
// (resetting their idle time), and moves delayed nacks whose delay now ends
// within the ack deadline to their final idle time.
func (g *groupSub) touch(ctx context.Context) error {
	// Under settleMu: a settlement must not run between the snapshot and
	// the script, or its final idle time would be reset here.
	g.settleMu.Lock()
	defer g.settleMu.Unlock()
	now := time.Now()
	var args []any
	var dues []time.Duration
	g.mu.Lock()
	for id := range g.holding {
		args = append(args, id, 0, -1)
	}
	for id, due := range g.delayed {
		left := due.Sub(now)
		if g.fitsIdle(left) {
			args = append(args, id, g.idleFor(left), -1)
			dues = append(dues, claimableIn(left))
			delete(g.delayed, id)
		} else {
			args = append(args, id, 0, -1)
		}
	}
	g.mu.Unlock()
	if err := g.claimOwn(ctx, args); err != nil {
		return err
	}
	g.scheduleDues(dues)
	return nil
}

// claimableIn is how long after the idle time is set an entry nacked with
// delay becomes claimable: delay rounded up to whole milliseconds, plus one.
// Redis keeps delivery times in whole milliseconds of its own clock,
// truncated, so an entry whose idle time is set late in one millisecond
// counts that millisecond as whole: the extra one keeps RetryAfter's "no
// sooner than" true.
func claimableIn(delay time.Duration) time.Duration {
	return (delay + time.Millisecond - 1).Truncate(time.Millisecond) + time.Millisecond
}

// fitsIdle reports whether a nack with delay can be expressed as an idle
// time, that is whether it becomes claimable within the ack deadline.
// Longer delays are held by the subscription until they fit.
func (g *groupSub) fitsIdle(delay time.Duration) bool {
	return claimableIn(delay).Milliseconds() <= g.ackMs
}

// idleFor is the idle time that makes an entry claimable by XAUTOCLAIM
// (min-idle = ack deadline) claimableIn(delay) after it is set.
func (g *groupSub) idleFor(delay time.Duration) int64 {
	return max(g.ackMs-claimableIn(delay).Milliseconds(), 0)
}

// claimOwn runs claimOwnScript over (id, idle, retry count) triples.
func (g *groupSub) claimOwn(ctx context.Context, triples []any) error {
	for len(triples) > 0 {
		n := min(len(triples), 3*maxScriptIDs)
		argv := append([]any{g.group, g.consumer}, triples[:n]...)
		if err := claimOwnScript.Run(context.WithoutCancel(ctx), g.rc, []string{g.key}, argv...).Err(); err != nil {
			return err
		}
		triples = triples[n:]
	}
	return nil
}

// cleanup deletes the group's consumers that own nothing and were idle
// longer than the stale limit.
func (g *groupSub) cleanup(ctx context.Context) {
	cs, err := g.rc.XInfoConsumers(ctx, g.key, g.group).Result()
	if err != nil {
		return
	}
	limit := g.c.cfg.staleConsumerAfter
	for _, c := range cs {
		if c.Name == g.consumer || c.Pending > 0 || c.Idle < limit {
			continue
		}
		if err := delConsumerScript.Run(ctx, g.rc, []string{g.key}, g.group, c.Name, limit.Milliseconds()).Err(); err == nil {
			g.log.Debug("redis: deleted stale consumer", "topic", g.topic, "group", g.group, "consumer", c.Name)
		}
	}
}

// settle is the pool's SettleFunc: it hands the operation to the settle
// goroutine. The entry stays held until the operation has run.
func (g *groupSub) settle(d dispatch.Delivery, r dispatch.Result) {
	id := d.Token.(string)
	op := settleOp{id: id, msg: d.Msg, delay: r.Delay, err: r.Err}
	switch r.Outcome {
	case dispatch.Ack:
		op.kind = opAck
	case dispatch.Term:
		op.kind = opTerm
	case dispatch.Nack:
		op.kind = opNack
	case dispatch.Release:
		op.kind = opRelease
	}
	if op.kind == opNack && !g.fitsIdle(r.Delay) {
		g.mu.Lock()
		g.delayed[id] = time.Now().Add(r.Delay)
		g.mu.Unlock()
	}
	g.ops <- op
}

// settler executes settle operations in batches until ops is closed.
func (g *groupSub) settler() {
	batch := make([]settleOp, 0, maxSettleOps)
	for op := range g.ops {
		batch = append(batch[:0], op)
	drain:
		for len(batch) < maxSettleOps {
			select {
			case op, ok := <-g.ops:
				if !ok {
					break drain
				}
				batch = append(batch, op)
			default:
				break drain
			}
		}
		g.execute(batch)
	}
}

// execute settles a batch: dead-letters first, then one XACK for every
// acknowledged entry and one script call for nacks and releases. Failures are
// retried until settleTimeout; what still fails stays pending and comes back
// after the ack deadline (at-least-once).
func (g *groupSub) execute(batch []settleOp) {
	ctx, cancel := dispatch.SettleContext(g.sub.HandlerContext(), settleTimeout)
	defer cancel()
	var dues []time.Duration
	g.settleMu.Lock()
	// Entries stay held (deadline extended, never reclaimed by this
	// subscription) until their settlement reached Redis; due nacks are
	// announced once they are no longer held.
	defer func() {
		for _, op := range batch {
			g.unhold(op.id)
		}
		g.settleMu.Unlock()
		g.scheduleDues(dues)
	}()
	var acks, claims []any
	for _, op := range batch {
		switch op.kind {
		case opAck:
			acks = append(acks, op.id)
		case opTerm:
			if g.giveUp(ctx, op) {
				acks = append(acks, op.id)
			}
		case opNack:
			switch {
			case !g.fitsIdle(op.delay):
				claims = append(claims, op.id, 0, -1) // touch keeps it until due
			default:
				claims = append(claims, op.id, g.idleFor(op.delay), -1)
				dues = append(dues, claimableIn(op.delay))
			}
		case opRelease:
			// Claimable at once, and the delivery is not counted.
			claims = append(claims, op.id, g.ackMs, max(op.msg.Attempt-1, 0))
		}
	}
	if len(acks) > 0 {
		g.withRetry(ctx, "XACK", func() error {
			args := append([]any{"xack", g.key, g.group}, acks...)
			return g.rc.Do(ctx, args...).Err()
		})
	}
	if len(claims) > 0 {
		g.withRetry(ctx, "nack", func() error { return g.claimOwn(ctx, claims) })
	}
}

// withRetry runs f until it succeeds, the client is closed or ctx ends.
func (g *groupSub) withRetry(ctx context.Context, what string, f func() error) {
	bo := newBackoff()
	for {
		err := f()
		if err == nil {
			return
		}
		if errors.Is(err, goredis.ErrClosed) || retry(ctx, bo) != nil {
			g.log.Warn("redis: settling failed; the messages stay pending and come back after the ack deadline",
				"topic", g.topic, "group", g.group, "op", what, "error", err)
			return
		}
	}
}

// giveUp handles a Term: dead-letter the message when configured (then it
// may be acknowledged), else log it. It reports whether to acknowledge.
func (g *groupSub) giveUp(ctx context.Context, op settleOp) bool {
	suffix := g.c.cfg.deadLetterSuffix
	if suffix == "" {
		g.log.Warn("redis: message not redelivered", "topic", g.topic, "group", g.group, "id", op.msg.ID, "offset", op.id, "attempt", op.msg.Attempt, "error", op.err)
		return true
	}
	m := op.msg.Clone()
	if m.Header == nil {
		m.Header = messaging.Header{}
	}
	reason := "unknown"
	if op.err != nil {
		reason = op.err.Error()
	}
	if len(reason) > maxReasonLength {
		reason = reason[:maxReasonLength]
	}
	m.Header[HeaderDeadLetterReason] = reason
	m.Header[HeaderDeadLetterAttempts] = fmt.Sprint(m.Attempt)
	m.Header[HeaderDeadLetterTopic] = g.topic
	m.Header[HeaderDeadLetterGroup] = g.group
	m.Header[HeaderDeadLetterID] = m.ID
	m.Header[HeaderDeadLetterOffset] = op.id
	m.Header[HeaderDeadLetterTime] = time.Now().UTC().Format(time.RFC3339Nano)
	dlq := g.c.StreamKey(g.topic + suffix)
	var err error
	g.withRetry(ctx, "dead-letter", func() error {
		err = g.rc.XAdd(ctx, &goredis.XAddArgs{Stream: dlq, Values: encode(m)}).Err()
		return err
	})
	return err == nil
}

// finalRelease runs when the subscription has stopped: nacks still waiting
// for a delay longer than the ack deadline can no longer be held, so they
// are left claimable when the ack deadline passes; and the consumer is
// deleted when it owns nothing.
func (g *groupSub) finalRelease() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.mu.Lock()
	g.delayed = map[string]time.Time{}
	g.mu.Unlock()
	_ = delConsumerScript.Run(ctx, g.rc, []string{g.key}, g.group, g.consumer, 0).Err()
}
