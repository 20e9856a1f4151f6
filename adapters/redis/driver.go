package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/dlheader"
	"github.com/msgkit/messaging/driver"
)

// This file is the consumer side of the adapter: the driver the library's
// engine runs (see package driver). A group subscription is a consumer of a
// Redis consumer group; a group-less one and Stream.Read use XREAD.

const (
	maxReadCount = 256 // entries per XREADGROUP, XAUTOCLAIM or XREAD
	maxScriptIDs = 300 // entries per claimOwnScript call
	// settleTimeout bounds a Settle or Extend call, retries included.
	settleTimeout = 30 * time.Second
)

// redisDriver opens receivers and log readers for the client.
type redisDriver struct{ c *Client }

var _ driver.LogReader = redisDriver{} // a driver.Driver: see New

var _ driver.Extender = (*groupReceiver)(nil)

func (d redisDriver) Capabilities() messaging.Capabilities { return d.c.Capabilities() }

// OpenReceiver creates the group (at StartAt, with MKSTREAM) when it does
// not exist and returns a uniquely named consumer of it; without a group it
// returns a reader of the stream from StartAt.
func (d redisDriver) OpenReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	c := d.c
	start, err := exclusiveStart(o.StartAt)
	if err != nil {
		return nil, err
	}
	key := c.StreamKey(topic)
	if o.Group == "" {
		l, err := c.openLog(ctx, topic, key, start)
		if err != nil {
			return nil, err
		}
		return &ephemeralReceiver{l}, nil
	}
	if sfx := c.cfg.deadLetterSuffix; sfx != "" {
		if err := messaging.ValidateName(topic + sfx); err != nil {
			return nil, fmt.Errorf("redis: dead-letter topic %q: %w", topic+sfx, errors.Join(messaging.ErrInvalidOption, err))
		}
	}
	consumer := consumerName()
	err = c.whileUnreachable(ctx, "subscribe to "+topic, func(ctx context.Context) error {
		if err := c.ensureGroup(ctx, key, o.Group, start); err != nil {
			return err
		}
		return c.createConsumer(ctx, key, o.Group, consumer)
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %s: %w", topic, err)
	}
	every := min(max(o.AckDeadline/4, 100*time.Millisecond), c.cfg.block)
	r := &groupReceiver{
		c: c, topic: topic, key: key, group: o.Group, consumer: consumer, o: o,
		wakeChannel:  wakeChannel(key, o.Group),
		ackMs:        max(o.AckDeadline.Milliseconds(), 1),
		reclaimEvery: every,
		yield:        every + max(every/4, 200*time.Millisecond), // Redis times blocked reads out at 10 Hz
		seenWithin:   3*c.cfg.block + 2*time.Second,
		cursor:       "0-0",
		held:         map[string]struct{}{},
		wake:         make(chan struct{}, 1),
	}
	c.waker.add(ctx, r)
	return r, nil
}

// createConsumer registers consumer in the group at once (XGROUP
// CREATECONSUMER), so that the other members see it before it ever reads
// an entry: Redis before 7.2 creates a consumer only when a read or claim
// gives it one, and a member that nacks yields its entries only to the
// members it sees (see groupReceiver.Settle).
func (c *Client) createConsumer(ctx context.Context, key, group, consumer string) error {
	if err := c.rc.XGroupCreateConsumer(ctx, key, group, consumer).Err(); err != nil {
		return c.opError("create consumer of group "+group, err)
	}
	return nil
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

// groupReceiver is one consumer of a consumer group. Receive reads new
// entries (XREADGROUP) and, every reclaimEvery, claims the group's entries
// idle past the ack deadline (XAUTOCLAIM): a crashed consumer's, and those
// any member released or nacked, which Settle makes claimable at once.
// Every reclaim marks its consumer seen (see reclaimScript). A member alone
// in its group (no other consumer seen within seenWithin) reclaims what it
// nacked or released at once (see Settle).
type groupReceiver struct {
	c            *Client
	topic        string
	key          string
	group        string
	consumer     string
	wakeChannel  string // see waker
	o            messaging.SubscribeOptions
	ackMs        int64
	reclaimEvery time.Duration
	yield        time.Duration // how long a member that nacked lets the others reclaim first
	// seenWithin: a consumer seen within it counts as a member (see
	// claimOwnScript). A member with room reclaims, which marks its
	// consumer seen, at most reclaimEvery+yield apart (2.25 block times
	// plus 200ms); the rest leaves room for a slow round trip, GC and
	// scheduling.
	seenWithin time.Duration

	// Used by Receive (and Close, after it) only; times in unix ns.
	reading     chan result[[]entry] // the read of new entries in progress
	cursor      string               // XAUTOCLAIM scan position
	nextReclaim int64
	nextCleanup time.Time
	out         []driver.Delivery // what a read's Receive returned last, reused (see driver.Receiver)

	// yieldUntil, set by Settle after a release or nack, keeps this member
	// from reclaiming before the others had their turn (see reclaimAt).
	yieldUntil atomic.Int64
	// reclaimNow, set by Settle after a release or nack when no other
	// member is in the group, or by the waker when another member did so,
	// makes Receive reclaim at once; wake stops its wait for a blocked
	// read for that (see reclaimSoon).
	reclaimNow atomic.Bool
	wake       chan struct{}

	// settleMu orders settlements against reclaims and extensions: a
	// reclaim does not take back an entry being settled here, and an
	// extension does not reset the idle time a release set.
	settleMu sync.Mutex
	heldMu   sync.Mutex
	held     map[string]struct{} // received, not yet settled
}

// Receive returns claimed or new entries, blocking until one is there.
// Its read of new entries (XREADGROUP) outlives a Receive that ctx ended or
// Settle woke (go-redis cannot interrupt a blocking command, and Close must
// not wait for it): the next Receive takes its result, so new entries come
// in the stream's order. What it returns beyond n (it was sent for an
// earlier call's n) is released at once, as nothing would extend its ack
// deadline while it waited here. Close releases what nobody took.
func (r *groupReceiver) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	clear(r.out) // the engine has copied them
	n = min(n, maxReadCount)
	calls := withoutDeadline{ctx}
	for {
		if r.reclaimNow.Swap(false) {
			select {
			case <-r.wake:
			default:
			}
			r.nextReclaim, r.cursor = 0, "0-0" // the scan may be past the entries
		}
		if now := time.Now(); !now.Before(r.reclaimAt()) {
			if !now.Before(r.nextCleanup) {
				// OpenReceiver has just registered this member for the first.
				r.cleanup(calls, !r.nextCleanup.IsZero())
				r.nextCleanup = now.Add(max(r.c.cfg.staleConsumerAfter/2, time.Second))
			}
			ds, more, err := r.reclaim(calls, n)
			if !more {
				r.nextReclaim = now.Add(r.reclaimEvery).UnixNano()
			}
			if len(ds) > 0 || err != nil {
				return ds, r.c.readError(r.topic, err)
			}
			continue
		}
		if r.reading == nil {
			// Let the worker that the engine may just have given the
			// last entries to run first: the goroutine started below
			// would take its turn on this processor, and the handler
			// would wait while the next read is sent. In a scheduler
			// trace at 1,000 msg/s a message's worker waited 51µs on
			// average for a processor after the engine handed it over,
			// 4µs with this yield. (A read starts once per returned
			// batch or per idle block time: the yield costs nothing
			// that counts.)
			runtime.Gosched()
			block, err := blockFor(ctx, min(time.Until(r.reclaimAt()), r.c.cfg.block))
			if err != nil {
				return nil, err
			}
			reading := make(chan result[[]entry], 1)
			go func() {
				// Not cancelled with ctx: what the read returns is this
				// consumer's, so the reply must be seen.
				res, err := r.readGroup(context.WithoutCancel(ctx), n, block)
				reading <- result[[]entry]{res, err}
			}()
			r.reading = reading
		}
		select {
		case rr := <-r.reading:
			r.reading = nil
			if rr.err != nil && !errors.Is(rr.err, goredis.Nil) {
				return nil, r.c.readError(r.topic, rr.err)
			}
			ds := r.deliveries(rr.v, r.out)
			if ds != nil {
				r.out = ds
			}
			if len(ds) > n {
				r.release(ds[n:])
				return ds[:n:n], nil
			} else if len(ds) > 0 {
				return ds, nil
			}
		case <-r.wake: // Settle asks for a reclaim (reclaimNow)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// result is what a blocking read returned (see await and
// groupReceiver.reading).
type result[T any] struct {
	v   T
	err error
}

// reclaimSoon makes Receive reclaim at once, waking it.
func (r *groupReceiver) reclaimSoon() {
	r.reclaimNow.Store(true)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// reclaimAt is when Receive reclaims next: every reclaimEvery, but not
// within yield (more than a reclaimEvery) after this member released or
// nacked entries, so the other members, reclaiming every reclaimEvery too,
// take those first; and never more than yield late (then only entries the
// others left for longer than yield are taken).
func (r *groupReceiver) reclaimAt() time.Time {
	return time.Unix(0, max(r.nextReclaim, min(r.yieldUntil.Load(), r.nextReclaim+int64(r.yield))))
}

// deliveries holds and decodes what XREADGROUP returned (Attempt 1: a new
// entry's delivery counter), in out's array while it has room.
func (r *groupReceiver) deliveries(res []entry, out []driver.Delivery) []driver.Delivery {
	n := len(res)
	if n == 0 {
		return nil
	}
	ds := slices.Grow(out[:0], n)
	ids := make([]string, 0, n) // the tokens point into it (see token)
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	for _, x := range res {
		r.held[x.id] = struct{}{}
		var m *messaging.Message
		if x.values != nil {
			m = decodeMap(r.topic, x.id, x.values)
		} else {
			m = decodeList(r.topic, x.id, x.list)
		}
		m.Group, m.Attempt = r.group, 1
		ids = append(ids, x.id)
		ds = append(ds, driver.Delivery{Msg: m, Token: &ids[len(ids)-1]})
	}
	return ds
}

// token returns the entry ID of a delivery. A delivery's Token is a pointer
// to its ID in a slice of the IDs its read returned: one allocation per
// read instead of one per message (a string in an any is a copy on the
// heap), and Settle passes the pointers to go-redis as they are.
func token(d driver.Delivery) string { return *d.Token.(*string) }

// abandoned releases what a read returned after Close left it, and ends
// the member again: Redis created its consumer again to own what it served
// after Close's leave (and, since 7.2, for any read). What Redis served
// before that leave, the leave handed to releasedHolder as it was (idle
// since the read, not claimable before the ack deadline): it is released
// there.
func (r *groupReceiver) abandoned(res []entry) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if ds := r.deliveries(res, nil); len(ds) > 0 {
		r.release(ds)
		triples := make([]any, 0, 3*len(ds))
		for _, d := range ds {
			triples = append(triples, token(d), r.ackMs, max(d.Msg.Attempt-1, 0))
		}
		if _, err := r.claimOwn(ctx, releasedHolder, triples, false); err != nil && !errors.Is(err, goredis.ErrClosed) {
			r.c.cfg.logger.Warn("redis: releasing entries failed; they come back after the ack deadline", "topic", r.topic, "group", r.group, "error", err)
		}
	}
	if err := r.leave(ctx); err != nil && !errors.Is(err, goredis.ErrClosed) {
		r.c.cfg.logger.Warn("redis: deleting the consumer of a closed subscription failed; the stale consumer cleanup deletes it", "topic", r.topic, "group", r.group, "consumer", r.consumer, "error", err)
	}
}

// leave hands what the consumer owns to the group's holder of released
// entries and deletes the consumer (see leaveScript).
func (r *groupReceiver) leave(ctx context.Context) error {
	return leaveScript.Run(ctx, r.c.rc, []string{r.key}, r.group, r.consumer).Err()
}

// release settles ds Release, within the settle timeout. A release the
// closed go-redis client refused (the Client's Close closed it, with a read
// that came back after the subscription's Close: see abandoned) is not a
// failure: the entries come back after the ack deadline, as after any
// Close that cannot reach Redis.
func (r *groupReceiver) release(ds []driver.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	sts := make([]driver.Settlement, len(ds))
	for i, d := range ds {
		sts[i] = driver.Settlement{Delivery: d, Outcome: driver.Release}
	}
	if err := r.Settle(ctx, sts); err != nil && !errors.Is(err, goredis.ErrClosed) {
		r.c.cfg.logger.Warn("redis: releasing entries failed; they come back after the ack deadline", "topic", r.topic, "group", r.group, "error", err)
	}
}

// readError classifies a read's error for the engine: a deleted stream or
// group ends the subscription, so does a closed client; anything else but
// a context's end is retried. Of Redis's UNBLOCKED errors only "the stream
// key no longer exists" is a deletion: a master demoted to a replica (a
// Sentinel failover) and CLIENT UNBLOCK ... ERROR send others.
func (c *Client) readError(topic string, err error) error {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, goredis.ErrClosed):
		return c.opError("read "+topic, err)
	case strings.HasPrefix(err.Error(), "NOGROUP"), strings.HasPrefix(err.Error(), "UNBLOCKED the stream key no longer exists"):
		return fmt.Errorf("redis: read %s: its group or stream no longer exists: %w (%w)", topic, messaging.ErrTopicDeleted, err)
	}
	return driver.Transient(fmt.Errorf("redis: read %s: %w", topic, err))
}

// reclaim claims up to n of the group's entries idle for at least the ack
// deadline; more reports that the scan has not reached the end. An entry
// past MaxAttempts (the ack deadline passed on its last allowed attempt) is
// returned with Delivery.Err set: the engine gives it up (settles it Term,
// dead-lettering it, within its settle timeout) without running the
// handler. Settling it here would hold Receive, and so Close, for as long
// as the dead-letter write is retried.
func (r *groupReceiver) reclaim(ctx context.Context, n int) (ds []driver.Delivery, more bool, err error) {
	r.settleMu.Lock()
	minIdle := r.ackMs
	if time.Now().UnixNano() < r.yieldUntil.Load() { // yielding: only what the others left
		minIdle += r.yield.Milliseconds()
	}
	res, err := reclaimScript.Run(ctx, r.c.rc, []string{r.key}, r.group, r.consumer, minIdle, r.cursor, n).Slice()
	var msgs []*messaging.Message
	if err == nil {
		r.cursor, msgs, err = r.parseReclaim(res)
	}
	ids := make([]string, 0, len(msgs))
	var kept []any // (id, idle, retry count) of held entries the scan took
	r.heldMu.Lock()
	for _, m := range msgs {
		if _, ok := r.held[m.Offset]; ok {
			// Still handled here: its idle time grew while Redis was
			// unreachable, or an extension came late. The claim counted a
			// delivery that did not happen: the counter is set back (and
			// the idle time reset, as an extension would).
			kept = append(kept, m.Offset, 0, max(m.Attempt-1, 0))
			continue
		}
		r.held[m.Offset] = struct{}{}
		ids = append(ids, m.Offset)
		d := driver.Delivery{Msg: m, Token: &ids[len(ids)-1]}
		if r.o.MaxAttempts > 0 && m.Attempt > r.o.MaxAttempts {
			d.Err = fmt.Errorf("redis: giving up after %d attempts: ack deadline passed", m.Attempt-1)
		}
		ds = append(ds, d)
	}
	r.heldMu.Unlock()
	if len(kept) > 0 {
		if _, kerr := r.claimOwn(ctx, r.consumer, kept, false); err == nil {
			err = kerr
		}
	}
	r.settleMu.Unlock()
	return ds, err == nil && len(msgs) > 0 && r.cursor != "0-0", err
}

// parseReclaim decodes reclaimScript's reply: the next scan position and
// the claimed entries, with Attempt their delivery counter (which
// XAUTOCLAIM incremented).
func (r *groupReceiver) parseReclaim(res []any) (next string, out []*messaging.Message, err error) {
	var list []any
	if len(res) == 2 {
		next, _ = res[0].(string)
		list, _ = res[1].([]any)
	}
	for _, x := range list {
		e, _ := x.([]any)
		if len(e) != 3 {
			next = ""
			break
		}
		id, _ := e[0].(string)
		fields, _ := e[1].([]any)
		count, _ := e[2].(int64)
		m := decodeList(r.topic, id, fields)
		m.Group, m.Attempt = r.group, int(max(count, 1))
		out = append(out, m)
	}
	if next == "" {
		return "0-0", nil, errUnexpectedReply("reclaim script", res)
	}
	return next, out, nil
}

// cleanup deletes the group's consumers that own nothing and were idle
// longer than the stale limit. If reregister, it registers this member
// again first: another member's cleanup may have deleted it if it did not
// reclaim (which marks it seen; before Redis 7.2 reading nothing does not)
// for that long.
func (r *groupReceiver) cleanup(ctx context.Context, reregister bool) {
	if reregister {
		_ = r.c.createConsumer(ctx, r.key, r.group, r.consumer)
	}
	cs, err := r.c.rc.XInfoConsumers(ctx, r.key, r.group).Result()
	if err != nil {
		return
	}
	limit := r.c.cfg.staleConsumerAfter
	for _, c := range cs {
		if c.Name == r.consumer || c.Pending > 0 || c.Idle < limit {
			continue
		}
		if err := delConsumerScript.Run(ctx, r.c.rc, []string{r.key}, r.group, c.Name, limit.Milliseconds()).Err(); err == nil {
			r.c.cfg.logger.Debug("redis: deleted stale consumer", "topic", r.topic, "group", r.group, "consumer", c.Name)
		}
	}
}

// Settle applies a batch: one XACK for the acknowledged entries and
// claimOwnScript calls for the nacked and released ones, which sets their
// idle time to the ack deadline (any member's next reclaim takes them; a
// release does not count the delivery) and counts the group's other
// consumers seen within seenWithin (a crashed process's consumer stays in
// the group until the stale consumer cleanup, but is not counted once it
// has been silent that long): with others this member yields (see
// reclaimAt), alone it reclaims them at once, waking its Receive (not for
// a batch of delayed nacks only, which no member can take yet); then the
// given-up entries are dead-lettered and acknowledged. Those calls are
// made one after another whatever the others' outcome, so a dead letter
// that cannot be written costs only its own entry's acknowledgement (it
// stays pending and comes back after the ack deadline). Failed calls are
// retried while the server cannot be reached, until ctx ends; an error
// reply is not retried.
func (r *groupReceiver) Settle(ctx context.Context, batch []driver.Settlement) error {
	r.settleMu.Lock()
	defer r.settleMu.Unlock()
	acks := make([]any, 3, 3+len(batch)) // XACK key group id...
	acks[0], acks[1], acks[2] = "xack", r.key, r.group
	var claims []any
	claimable := false // some claim is claimable at once: the members are told
	var terms []driver.Settlement
	var errs []error
	r.heldMu.Lock()
	for _, st := range batch {
		delete(r.held, token(st.Delivery))
	}
	r.heldMu.Unlock()
	for _, st := range batch {
		// st.Token (a *string, which go-redis writes as its string) goes
		// into the argument lists as it is: converting the ID to any
		// would allocate once per message.
		switch st.Outcome {
		case driver.Ack:
			acks = append(acks, st.Token)
		case driver.Term:
			terms = append(terms, st)
		case driver.Nack:
			// A Delay comes only from a subscription stopping with a
			// RetryAfter delay left (see driver.Nack): the entry's idle
			// time keeps the other members' reclaims (which take
			// entries idle for the ack deadline) from it that long,
			// within the ack deadline.
			idle := r.ackMs
			if st.Delay > 0 {
				idle = max(r.ackMs-st.Delay.Milliseconds(), 0)
			} else {
				claimable = true
			}
			claims = append(claims, st.Token, idle, -1)
		case driver.Release:
			claims = append(claims, st.Token, r.ackMs, max(st.Msg.Attempt-1, 0))
			claimable = true
		}
	}
	ack := func() {
		if len(acks) > 3 {
			errs = append(errs, retry(ctx, func() error { return r.c.rc.Do(ctx, acks...).Err() }))
		}
	}
	ack()
	if len(claims) > 0 {
		others := -1
		errs = append(errs, retry(ctx, func() (err error) {
			others, err = r.claimOwn(ctx, r.consumer, claims, claimable)
			return err
		}))
		switch {
		case !claimable: // only delayed nacks: nobody can take them yet
		case others == 0:
			r.yieldUntil.Store(0)
			r.reclaimSoon()
		default:
			r.yieldUntil.Store(time.Now().Add(r.yield).UnixNano())
		}
	}
	if len(terms) > 0 {
		acks = acks[:3]
		for _, st := range terms {
			if err := r.deadLetter(ctx, st); err != nil {
				errs = append(errs, err)
				continue
			}
			acks = append(acks, st.Token)
		}
		ack()
	}
	return errors.Join(errs...)
}

// Extend resets the idle time of the entries still held (not settled
// meanwhile: a release's idle time must stay).
func (r *groupReceiver) Extend(ctx context.Context, ds []driver.Delivery) error {
	r.settleMu.Lock()
	defer r.settleMu.Unlock()
	var triples []any
	r.heldMu.Lock()
	for _, d := range ds {
		if _, ok := r.held[token(d)]; ok {
			triples = append(triples, d.Token, 0, -1)
		}
	}
	r.heldMu.Unlock()
	_, err := r.claimOwn(ctx, r.consumer, triples, false)
	return err
}

// claimOwn runs claimOwnScript for consumer (this member's, or
// releasedHolder) over (id, idle, retry count) triples; with count it
// returns the number of the group's other consumers seen within seenWithin
// (-1 without, or on an error) and wakes them (see waker).
func (r *groupReceiver) claimOwn(ctx context.Context, consumer string, triples []any, count bool) (others int, err error) {
	others = -1
	for len(triples) > 0 {
		n := min(len(triples), 3*maxScriptIDs)
		last := n == len(triples)
		argv := append([]any{r.group, consumer, "", r.seenWithin.Milliseconds()}, triples[:n]...)
		if count && last {
			argv[2] = r.wakeChannel
		}
		res, err := claimOwnScript.Run(ctx, r.c.rc, []string{r.key}, argv...).Int64Slice()
		if err != nil {
			return -1, err
		}
		if count && last && len(res) == 2 {
			others = int(res[1])
		}
		triples = triples[n:]
	}
	return others, nil
}

// deadLetter adds a given-up message to the dead-letter topic when one is
// configured, with headers saying why.
func (r *groupReceiver) deadLetter(ctx context.Context, st driver.Settlement) error {
	suffix := r.c.cfg.deadLetterSuffix
	if suffix == "" {
		return nil
	}
	m := st.Msg.Clone()
	if m.Header == nil {
		m.Header = messaging.Header{}
	}
	dlheader.Set(m.Header, dlheader.Failure{
		Topic: r.topic, Group: r.group, ID: m.ID, Offset: token(st.Delivery),
		Attempts: m.Attempt, Err: st.Err, Time: time.Now(),
	})
	key := r.c.StreamKey(r.topic + suffix)
	err := retry(ctx, func() error {
		return r.c.rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: encode(m)}).Err()
	})
	if err != nil {
		return fmt.Errorf("redis: dead-letter %s (entry %s) to %s: %w", m.ID, token(st.Delivery), key, err)
	}
	return nil
}

// Close leaves the read in progress to release what it returns (see
// abandoned), stops listening for wakes, then hands what the consumer still
// owns (the entries the engine released) to the group's holder of released
// entries and deletes the consumer (see leaveScript).
func (r *groupReceiver) Close(ctx context.Context) error {
	if reading := r.reading; reading != nil {
		r.reading = nil
		go func() {
			if rr := <-reading; rr.err == nil || errors.Is(rr.err, goredis.Nil) {
				r.abandoned(rr.v)
			}
		}()
	}
	r.c.waker.remove(ctx, r)
	return r.leave(ctx)
}

// retry runs f until it succeeds, fails for good (see permanent) or ctx
// ends. An error after ctx's end says what the last attempt met.
func retry(ctx context.Context, f func() error) error {
	var last error // the last failure not caused by ctx
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := f()
		if permanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		if err != nil && ctx.Err() == nil {
			last = err
		}
		return struct{}{}, err
	})
	if err != nil && last != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w; last failure: %w", err, last)
	}
	return err
}

// permanent reports whether err cannot go away by sending the command
// again: the client is closed, or the server answered with an error (such
// as WRONGTYPE, OOM or NOPERM) other than one saying it is busy for now
// (loading, a read-only replica during a failover, a cluster reconfiguring
// or resharding, too many clients, another client's script running).
// Everything else (a connection that failed or timed out) may succeed on
// another attempt.
func permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, goredis.ErrClosed) {
		return true
	}
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return false
	}
	if _, moved := goredis.IsMovedError(err); moved {
		return false // go-redis ran out of redirects during a resharding
	}
	if _, ask := goredis.IsAskError(err); ask {
		return false
	}
	return !goredis.IsLoadingError(err) && !goredis.IsReadOnlyError(err) && !goredis.IsClusterDownError(err) &&
		!goredis.IsTryAgainError(err) && !goredis.IsMasterDownError(err) && !goredis.IsMaxClientsError(err) &&
		!goredis.IsNoReplicasError(err) && !strings.HasPrefix(err.Error(), "BUSY ") // another client's long script
}

// blockFor is how long a blocking read may wait: limit (at least a
// millisecond: Redis reads BLOCK 0 as "forever"), and no longer than ctx's
// deadline; when that is less than a millisecond away it waits for ctx. It
// fails once ctx has ended.
func blockFor(ctx context.Context, limit time.Duration) (time.Duration, error) {
	block := max(limit, time.Millisecond)
	if dl, ok := ctx.Deadline(); ok {
		if block = min(block, time.Until(dl)); block < time.Millisecond {
			<-ctx.Done()
		}
	}
	return block, ctx.Err()
}

// withoutDeadline is the context of the calls a Receive or a log read
// makes: its parent's values and cancellation, but no deadline, which
// bounds how long they wait for new entries (a batch's wait, a Read's
// end), not the calls. With ContextTimeoutEnabled (see parseURL) go-redis
// would cut the calls off at the deadline on the connection: a blocking
// read, which blocks until then (see blockFor), as the server's empty
// reply comes, closing the connection; a reclaim mid-reply, leaving the
// entries it claimed unseen until their ack deadline passes again. Without
// a deadline go-redis bounds a blocking read by its block time plus 10s,
// and other calls by ReadTimeout, as without ContextTimeoutEnabled.
type withoutDeadline struct{ context.Context }

func (withoutDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

// await runs read, a blocking read, in a goroutine and returns its result,
// or ctx's error as soon as ctx is cancelled: go-redis cannot interrupt a
// blocking command, and Close must not wait for it. What the read returns
// after that is dropped. When ctx only reached its deadline, the read
// (blocking no longer than that) is awaited.
func await[T any](ctx context.Context, read func() (T, error)) (T, error) {
	ch := make(chan result[T], 1)
	go func() {
		v, err := read()
		ch <- result[T]{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		res := <-ch
		return res.v, res.err
	}
	var zero T
	return zero, ctx.Err()
}

// ephemeralReceiver is a group-less subscription: it reads the stream with
// XREAD and keeps no state in Redis, so the engine redelivers failed
// messages itself (BrokerAttempts false) and settling needs nothing.
type ephemeralReceiver struct{ l *logReader }

func (r *ephemeralReceiver) Capabilities() messaging.Capabilities {
	caps := r.l.c.Capabilities()
	caps.BrokerAttempts = false
	return caps
}

func (r *ephemeralReceiver) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	msgs, err := r.l.next(ctx, n)
	ds := make([]driver.Delivery, len(msgs))
	for i, m := range msgs {
		ds[i] = driver.Delivery{Msg: m}
	}
	return ds, err
}

func (r *ephemeralReceiver) Settle(context.Context, []driver.Settlement) error { return nil }
func (r *ephemeralReceiver) Close(context.Context) error                       { return nil }

// OpenLog positions a reader of topic's stream at from.
func (d redisDriver) OpenLog(ctx context.Context, topic string, from messaging.Position) (driver.Log, error) {
	start, err := exclusiveStart(from)
	if err != nil {
		return nil, err
	}
	return d.c.openLog(ctx, topic, d.c.StreamKey(topic), start)
}

// openLog returns a reader of key after start, resolving "$" to the
// stream's last ID so that everything added after it returns is read.
func (c *Client) openLog(ctx context.Context, topic, key, start string) (*logReader, error) {
	var last string
	var exists bool
	err := c.whileUnreachable(ctx, "read "+topic, func(ctx context.Context) (err error) {
		last, exists, err = c.lastID(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	if start != "$" {
		last = start
	}
	return &logReader{c: c, topic: topic, key: key, last: last, exists: exists}, nil
}

// logReader follows a stream with XREAD from an exclusive start ID.
type logReader struct {
	c      *Client
	topic  string
	key    string
	last   string
	exists bool // the stream existed: its disappearance is the topic's deletion
}

// Next returns the next entries, blocking until there is one.
func (l *logReader) Next(ctx context.Context) ([]*messaging.Message, error) {
	return l.next(ctx, maxReadCount)
}

func (l *logReader) next(ctx context.Context, n int) ([]*messaging.Message, error) {
	calls := withoutDeadline{ctx}
	for {
		block, err := blockFor(ctx, l.c.cfg.block)
		if err != nil {
			return nil, err
		}
		args := &goredis.XReadArgs{Streams: []string{l.key, l.last}, Count: int64(min(n, maxReadCount)), Block: block}
		res, err := await(ctx, func() ([]goredis.XStream, error) { return l.c.rc.XRead(calls, args).Result() })
		if err != nil && !errors.Is(err, goredis.Nil) {
			return nil, l.c.readError(l.topic, err)
		}
		var out []*messaging.Message
		for _, s := range res {
			for _, x := range s.Messages {
				m := decodeMap(l.topic, x.ID, x.Values)
				m.Attempt = 1
				out = append(out, m)
				l.last = x.ID
			}
		}
		if len(out) > 0 {
			l.exists = true
			return out, nil
		}
		if l.exists {
			// XREAD waits on a deleted stream as on an empty one.
			found, err := l.c.rc.Exists(calls, l.key).Result()
			if err != nil {
				return nil, l.c.readError(l.topic, err)
			}
			if found == 0 {
				return nil, fmt.Errorf("redis: stream %s no longer exists: %w", l.key, messaging.ErrTopicDeleted)
			}
		}
	}
}

func (l *logReader) Close() error { return nil }
