package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/dispatch"
)

// item is a delivery the subscription holds from Receive until it is
// settled (queued for the settler).
type item struct {
	d       driver.Delivery
	settled atomic.Bool
	// nextExtend and every drive deadline extension; guarded by
	// subscription.heldMu.
	nextExtend time.Time
	every      time.Duration
	// prev and next link the held items; guarded by subscription.heldMu.
	prev, next *item
	// unwatch stops watching the delivery's Lease (see watchLease); set
	// before the item enters the delay heap, called when it is settled;
	// guarded by subscription.heldMu.
	unwatch func() bool
}

// subscription implements messaging.Subscription over a driver.Receiver (or,
// for Read, a driver.Log).
type subscription struct {
	c     *Consumer
	topic string
	o     messaging.SubscribeOptions
	caps  messaging.Capabilities
	r     driver.Receiver
	ext   driver.Extender
	log   *slog.Logger

	// handlerCtx ends with the parent context or when Shutdown's context
	// ends; fetchCtx also ends on Close and Shutdown.
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
	fetchCtx       context.Context
	stopFetch      context.CancelFunc
	// forced is set, and gaveUp closed, by a Shutdown whose context ended
	// with handlers still running, once it has released what the
	// subscription held; closed is closed once the receiver is closed
	// after that (or after the loop ended), which Close waits for instead
	// of the handlers Shutdown gave up on.
	forced atomic.Bool
	gaveUp chan struct{}
	closed chan struct{}

	// recvMu is held around Receive; receiverClosed, set under it before
	// the receiver is closed, keeps the loop from calling Receive again
	// (a loop Shutdown gave up on may still be running).
	recvMu         sync.Mutex
	receiverClosed bool

	// credits counts the deliveries that may be fetched: they are taken
	// before Receive and given back once the deliveries are settled, so at
	// most Prefetch deliveries (two batches for SubscribeBatch) are held.
	credits credits

	heldMu sync.Mutex
	held   item // sentinel of the ring of held items (no map: no allocation per delivery)

	// releasing is read-held by Shutdown while it releases the held items
	// and write-held by run to close the settle queue: a release Shutdown
	// decided on is queued before the settler drains the queue and ends.
	releasing sync.RWMutex

	settleQ settleQueue
	delays  *delays
	pool    *dispatch.Pool
	batch   *readyQueue // SubscribeBatch: local redeliveries waiting for the next batch

	// returned is closed once every handler has returned (the loop
	// ended), before the last settlements and the receiver's Close; done
	// once the subscription has finished.
	returned     chan struct{}
	returnedOnce sync.Once
	done         chan struct{}
	finishOnce   sync.Once
	err          error
}

func newSubscription(parent context.Context, c *Consumer, topic string, o messaging.SubscribeOptions, caps messaging.Capabilities, r driver.Receiver) *subscription {
	handlerCtx, cancelHandlers := context.WithCancel(dispatch.WithMaxAttempts(parent, o.MaxAttempts))
	handlerCtx = dispatch.Stoppable(handlerCtx)
	fetchCtx, stopFetch := context.WithCancel(handlerCtx)
	s := &subscription{
		c: c, topic: topic, o: o, caps: caps, r: r, log: c.opts.Logger,
		handlerCtx: handlerCtx, cancelHandlers: cancelHandlers, fetchCtx: fetchCtx, stopFetch: stopFetch,
		done: make(chan struct{}), returned: make(chan struct{}), gaveUp: make(chan struct{}), closed: make(chan struct{}),
	}
	s.held.prev, s.held.next = &s.held, &s.held
	if r == nil { // Read: nothing to release or close but the log, which read closes
		close(s.closed)
		return s
	}
	s.ext, _ = r.(driver.Extender)
	s.credits.wake = make(chan struct{}, 1)
	s.credits.put(max(o.Prefetch, 1))
	s.settleQ.wake = make(chan struct{}, 1)
	s.delays = newDelays(s.fire)
	return s
}

// run runs loop (which fetches until the subscription stops and returns
// once no handler runs), then settles what is left, closes the receiver and
// finishes the subscription. When Shutdown gives up on running handlers
// first, run settles the releases and closes the receiver at once, and
// finishes the subscription once the loop has returned (its handlers with
// it).
func (s *subscription) run(loop func(*subscription) error) {
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		s.settler()
	}()
	extended := make(chan struct{})
	extCtx, stopExtending := context.WithCancel(context.WithoutCancel(s.handlerCtx))
	if s.ext != nil {
		go func() {
			defer close(extended)
			s.extender(extCtx)
		}()
	} else {
		close(extended)
	}
	go s.delays.run()
	looped := make(chan error, 1)
	go func() { looped <- loop(s) }()
	var err error
	ended := true
	select {
	case err = <-looped:
		s.handlersReturned()
	case <-s.gaveUp:
		ended = false
	}
	// No Receive runs from here on: one in flight returns promptly, its
	// context having ended (Shutdown stops fetching first).
	s.recvMu.Lock()
	s.receiverClosed = true
	s.recvMu.Unlock()
	if !ended {
		// What a loop still running took in after Shutdown's release.
		s.releaseHeld()
	}
	s.releasing.Lock()
	s.heldMu.Lock() // see settle
	s.settleQ.close()
	s.heldMu.Unlock()
	s.releasing.Unlock()
	<-settled
	// Every delivery is settled: cut an Extend in flight short and wait for
	// it, as the receiver is closed only after its other calls returned.
	stopExtending()
	<-extended
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.handlerCtx), s.c.opts.SettleTimeout)
	if cerr := s.r.Close(ctx); cerr != nil {
		s.log.Warn(s.c.opts.Name+": closing a subscription failed", "topic", s.topic, "group", s.o.Group, "error", cerr)
	}
	cancel()
	close(s.closed)
	if !ended {
		err = <-looped // the handlers Shutdown gave up on have returned
	}
	s.finish(err)
}

// releaseHeld releases every delivery still held.
func (s *subscription) releaseHeld() {
	s.heldMu.Lock()
	var its []*item
	for it := s.held.next; it != &s.held; it = it.next {
		its = append(its, it)
	}
	s.heldMu.Unlock()
	s.releaseAll(its)
}

// handlersReturned closes returned, once.
func (s *subscription) handlersReturned() { s.returnedOnce.Do(func() { close(s.returned) }) }

// finish records how the subscription ended (see ended) and wakes waiters.
func (s *subscription) finish(err error) {
	s.handlersReturned()
	s.finishOnce.Do(func() {
		s.err = err
		s.stopFetch()
		s.cancelHandlers()
		s.c.remove(s)
		close(s.done)
	})
}

// ended is a loop's result, taken before the loop stops fetching itself: a
// context error once the subscription was stopped (Close, Shutdown, the
// parent context) is a clean end; any other error, a driver's error that
// wraps a context error included, ends the subscription with it.
func (s *subscription) ended(err error) error {
	if err != nil && s.fetchCtx.Err() != nil && isCtxErr(err) {
		return nil
	}
	return err
}

// Close stops the subscription and waits until it has finished; see
// messaging.Subscription. Once a Shutdown whose context ended has released
// the messages of the handlers still running (before Close or while it
// waits), it waits only until those releases are settled and the receiver
// is closed, not for those handlers.
func (s *subscription) Close() error {
	s.stopFetch()
	s.wait()
	return nil
}

// wait waits until the subscription has finished or, once Shutdown gave up
// on its handlers, until its receiver is closed.
func (s *subscription) wait() {
	select {
	case <-s.done:
	case <-s.gaveUp:
		<-s.closed
	}
}

// Shutdown stops the subscription and waits until it has finished or ctx
// ends; see messaging.Subscription.
func (s *subscription) Shutdown(ctx context.Context) error {
	s.stopFetch()
	select {
	case <-s.done:
		return nil
	case <-s.returned:
		// Every handler returned in time. Their outcomes are settled and
		// the receiver closed within the settle timeout: wait for that
		// while ctx lasts (a Close after it waits for the rest).
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		return nil
	case <-ctx.Done():
	}
	select {
	case <-s.returned: // returned in time after all (both were ready)
		return nil
	default:
	}
	if !s.forced.CompareAndSwap(false, true) {
		return ctx.Err() // another Shutdown gave up on them
	}
	s.cancelHandlers()
	s.releasing.RLock()
	if s.delays != nil {
		// Held nacks are nacked with the delay they have left, local
		// redeliveries released, as at any stop (see stopDelays).
		s.stopDelays()
	}
	s.releaseHeld()
	s.releasing.RUnlock()
	close(s.gaveUp)
	return ctx.Err()
}

// Done is closed once the subscription has finished.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Err is the error that ended the subscription, or nil.
func (s *subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// receive takes credits and fetches up to n deliveries with ctx, returning
// them as held items.
func (s *subscription) receive(ctx context.Context, n int) ([]*item, error) {
	n, err := s.credits.take(ctx, n)
	if err != nil {
		return nil, err
	}
	s.recvMu.Lock()
	if s.receiverClosed { // Shutdown gave up on this loop; run closed the receiver
		s.recvMu.Unlock()
		return nil, context.Canceled
	}
	ds, err := s.r.Receive(ctx, n)
	if testHookReceived != nil {
		testHookReceived()
	}
	if len(ds) > n {
		err = errors.Join(err, fmt.Errorf("engine: %s: receiver returned %d deliveries for %d: %w", s.c.opts.Name, len(ds), n, messaging.ErrInvalidOption))
		ds = ds[:n] // a broken driver; the surplus is redelivered after the ack deadline
	}
	s.credits.put(n - len(ds))
	// Held before recvMu is let go: once run has it (after a Shutdown gave
	// up on this loop) it releases what is held, then closes the settle
	// queue and the receiver; a delivery held after that would be released
	// into a queue nobody reads any more, never settled.
	its := s.hold(ds)
	s.recvMu.Unlock()
	for i := 0; i < len(its); {
		if it := its[i]; it.d.Err != nil { // undecodable: given up, never handled
			s.settle(it, driver.Term, 0, it.d.Err)
			its = append(its[:i], its[i+1:]...)
			continue
		}
		i++
	}
	return its, err
}

// hold records fetched deliveries for extension and forced release.
func (s *subscription) hold(ds []driver.Delivery) []*item {
	if len(ds) == 0 {
		return nil
	}
	its := make([]*item, len(ds))
	now := time.Now()
	s.heldMu.Lock()
	for i, d := range ds {
		it := &item{d: d}
		if s.ext != nil {
			it.every = d.ExtendEvery
			if it.every <= 0 {
				it.every = s.o.AckDeadline / 3
			}
			it.every = max(it.every, 2*s.extendTick())
			it.nextExtend = now.Add(it.every / 2) // it may have waited in a broker buffer
		}
		it.prev, it.next = s.held.prev, &s.held
		s.held.prev.next = it
		s.held.prev = it
		its[i] = it
	}
	s.heldMu.Unlock()
	return its
}

// runPool is the Subscribe loop: fetch, hand to the pool (or handle a lone
// delivery here, Pool.Inline), until the subscription stops; then release
// what is queued and wait for the handlers.
func (s *subscription) runPool(h messaging.Handler) error {
	s.pool = dispatch.NewPool(s.handlerCtx, s.o.Concurrency, s.o.Prefetch-s.o.Concurrency, h, s.handled, s.o.MaxAttempts)
	// Once the subscription stops, what waits for a worker is released,
	// not handled, also before the fetch loop gets to Close the pool.
	s.pool.StopWith(s.fetchCtx)
	fr := newFetchRetry(s)
	var err error
	for err == nil {
		var its []*item
		its, err = s.receive(s.fetchCtx, s.o.Prefetch)
		if err == nil {
			fr.ok() // before a handler runs here
		}
		// One delivery, one idle worker: handled here, without waking the
		// worker (see the package doc); released instead, as by the
		// worker, once the subscription stops (StopWith).
		if len(its) == 1 && s.pool.Inline(dispatch.Delivery{Msg: its[0].d.Msg, Token: its[0]}) {
			its = nil
		}
		for i, it := range its {
			if !s.pool.Submit(s.fetchCtx, dispatch.Delivery{Msg: it.d.Msg, Token: it}) {
				s.releaseAll(its[i:])
				break
			}
		}
		if err != nil {
			err = fr.retry(err)
		}
		if err == nil && s.fetchCtx.Err() != nil {
			err = s.fetchCtx.Err()
		}
	}
	err = s.ended(err)
	s.stopFetch()
	s.stopDelays()
	s.pool.Close()
	return err
}

// runBatches is the SubscribeBatch loop: fill a batch (up to BatchSize,
// waiting at most BatchWait after its first message), run h on it in this
// goroutine, settle, repeat.
func (s *subscription) runBatches(h messaging.BatchHandler) error {
	s.batch = &readyQueue{}
	// Credits for a second batch (Prefetch is one): the next batch is
	// fetched while the settler acknowledges the last one, instead of after.
	s.credits.put(s.o.BatchSize)
	err := s.ended(s.batches(h))
	s.stopFetch()
	s.stopDelays()
	s.releaseAll(s.batch.take())
	return err
}

func (s *subscription) batches(h messaging.BatchHandler) error {
	fr := newFetchRetry(s)
	var batch []*item
	// retryAt is when a fetch may be retried after a transient error: a
	// partial batch does not wait for it past BatchWait; the next batch's
	// fetch waits for the rest of it.
	var retryAt time.Time
	for {
		batch = batch[:0]
		var fill context.Context // ends BatchWait after the batch's first message
		var cancelFill context.CancelFunc = func() {}
		for len(batch) < s.o.BatchSize {
			for _, it := range s.batch.take() {
				if !it.settled.Load() { // released meanwhile: its Lease ended
					batch = append(batch, it)
				}
			}
			if len(batch) > 0 && fill == nil {
				fill, cancelFill = context.WithTimeout(s.fetchCtx, s.o.BatchWait)
			}
			if len(batch) >= s.o.BatchSize {
				break
			}
			ctx := s.fetchCtx
			if fill != nil {
				ctx = fill
			}
			if !pauseUntil(ctx, retryAt) {
				if s.fetchCtx.Err() != nil {
					cancelFill()
					s.releaseAll(batch)
					return s.fetchCtx.Err()
				}
				break // the batch waited long enough; the backoff goes on
			}
			ctx, wake := context.WithCancel(ctx)
			s.batch.setWake(wake)
			its, err := s.receive(ctx, s.o.BatchSize-len(batch))
			s.batch.setWake(nil)
			woken := ctx.Err() != nil && (fill == nil || fill.Err() == nil)
			wake()
			batch = append(batch, its...)
			if err == nil {
				fr.ok()
				continue
			}
			if s.fetchCtx.Err() != nil {
				cancelFill()
				s.releaseAll(batch)
				return s.fetchCtx.Err()
			}
			if fill != nil && fill.Err() != nil {
				break // the batch waited long enough
			}
			if woken && isCtxErr(err) {
				continue // a local redelivery is ready
			}
			wait, err := fr.retryIn(err)
			if err != nil {
				cancelFill()
				s.releaseAll(batch)
				return err
			}
			retryAt = time.Now().Add(wait) // waited for at the top, at most until BatchWait ends
		}
		cancelFill()
		if len(batch) > s.o.BatchSize { // redeliveries beyond the batch wait for the next one
			s.batch.push(batch[s.o.BatchSize:]...)
			batch = batch[:s.o.BatchSize]
		}
		msgs := make([]*messaging.Message, len(batch))
		for i, it := range batch {
			msgs[i] = it.d.Msg
		}
		for i, r := range dispatch.InvokeBatch(s.handlerCtx, h, msgs, s.o.MaxAttempts) {
			s.handled(dispatch.Delivery{Msg: msgs[i], Token: batch[i]}, r)
		}
	}
}

// handled takes a handler's classified result, from a worker or the batch
// loop. It never blocks: nacks the broker cannot delay or redeliver go to
// the delay heap, everything else to the settler.
func (s *subscription) handled(d dispatch.Delivery, r dispatch.Result) {
	it := d.Token.(*item)
	out, delay := r.Outcome, r.Delay
	if out == driver.Nack && s.forced.Load() {
		out = driver.Release // cancelled by Shutdown: release at once
	}
	if out == driver.Nack {
		switch {
		case !s.caps.BrokerAttempts:
			s.watchLease(it)
			if s.delays.add(it, delay, true, r.Err) {
				return
			}
			out, delay = driver.Release, 0 // stopping: the broker keeps it (an uncommitted offset)
		case !s.caps.NativeDelay && delay > 0:
			s.watchLease(it)
			if s.delays.add(it, delay, false, r.Err) {
				return
			}
		}
		// Without NativeDelay a delay reaches the driver only when the
		// subscription stops with it unheld (see driver.Nack).
	}
	s.settle(it, out, delay, r.Err)
}

// watchLease releases it once its delivery's Lease ends while the engine
// holds it for a delay or an in-process redelivery (see driver.Delivery);
// settle stops the watch.
func (s *subscription) watchLease(it *item) {
	if it.d.Lease == nil {
		return
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if it.unwatch == nil {
		it.unwatch = context.AfterFunc(it.d.Lease, func() { s.settle(it, driver.Release, 0, nil) })
	}
}

// fire is the delay heap's action for a due item.
func (s *subscription) fire(it *item, redeliver bool, err error) {
	if !redeliver {
		s.settle(it, driver.Nack, 0, err)
		return
	}
	s.heldMu.Lock() // it.d is read under it by the extender and settle
	if it.settled.Load() {
		s.heldMu.Unlock()
		return // released by Shutdown
	}
	m := it.d.Msg.Clone()
	m.Attempt++
	it.d.Msg = m
	s.heldMu.Unlock()
	if s.batch != nil {
		s.batch.push(it)
		return
	}
	if !s.pool.Submit(s.fetchCtx, dispatch.Delivery{Msg: m, Token: it}) {
		s.settle(it, driver.Release, 0, nil)
	}
}

// stopDelays stops the delay heap and settles what it held: a local
// redelivery is released (the broker keeps the message: an uncommitted
// offset), a held nack is nacked now with the delay it had left, for the
// driver to keep if the broker lets it (see driver.Nack).
func (s *subscription) stopDelays() {
	now := time.Now()
	for _, e := range s.delays.close() {
		if e.redeliver {
			s.settle(e.it, driver.Release, 0, nil)
		} else {
			s.settle(e.it, driver.Nack, max(e.due.Sub(now), 0), e.err)
		}
	}
}

func (s *subscription) releaseAll(its []*item) {
	for _, it := range its {
		s.settle(it, driver.Release, 0, nil)
	}
}

// settle queues its outcome for the settler, once. Deciding that this call
// settles it and queuing the outcome are one step under heldMu, under
// which run closes the queue: an outcome decided before the queue closed
// is in it. (A handler's outcome decided as Shutdown gave up was queued
// after the settler had ended, and lost: Kafka's Close then waited for
// the delivery to settle for half the rebalance timeout, 15s.)
func (s *subscription) settle(it *item, out driver.Outcome, delay time.Duration, err error) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if !it.settled.CompareAndSwap(false, true) {
		return
	}
	if testHookSettling != nil {
		testHookSettling()
	}
	if it.unwatch != nil {
		it.unwatch()
	}
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
	s.settleQ.push(driver.Settlement{Delivery: it.d, Outcome: out, Delay: delay, Err: err})
}

// testHookReceived, set by tests only, runs in receive between a
// Receive's return and the holding of its deliveries (recvMu held).
var testHookReceived func()

// testHookSettling, set by tests only, runs in settle between deciding an
// item's outcome and queuing it (heldMu held).
var testHookSettling func()

// settler applies queued outcomes in batches until the queue is closed and
// empty, giving back a fetch credit per settled delivery.
func (s *subscription) settler() {
	var batch []driver.Settlement
	for {
		var ok bool
		clear(batch) // drop references to settled messages
		batch, ok = s.settleQ.take(s.c.opts.SettleBatch, batch)
		if !ok {
			return
		}
		for _, st := range batch {
			if st.Outcome == driver.Term {
				s.log.Warn(s.c.opts.Name+": message not redelivered", "topic", s.topic, "group", s.o.Group, "id", st.Msg.ID, "attempt", st.Msg.Attempt, "error", st.Err)
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.handlerCtx), s.c.opts.SettleTimeout)
		if err := s.r.Settle(ctx, batch); err != nil {
			s.log.Warn(s.c.opts.Name+": settling failed; the broker redelivers after the ack deadline", "topic", s.topic, "group", s.o.Group, "messages", len(batch), "error", err)
		}
		cancel()
		s.credits.put(len(batch))
	}
}

// extendTick is how often the extender looks for due extensions.
func (s *subscription) extendTick() time.Duration {
	shortest := s.o.AckDeadline
	if len(s.o.RedeliveryBackoff) > 0 {
		shortest = min(shortest, slices.Min(s.o.RedeliveryBackoff))
	}
	return max(shortest/6, 5*time.Millisecond)
}

// extender extends the deadlines of held deliveries when due, until ctx
// ends (every delivery is settled) or Shutdown's context ended.
func (s *subscription) extender(ctx context.Context) {
	tick := time.NewTicker(s.extendTick())
	defer tick.Stop()
	var due []driver.Delivery
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
		if s.forced.Load() {
			return // a handler that ignores its cancelled context keeps nothing from redelivery
		}
		due = due[:0]
		s.heldMu.Lock()
		for it := s.held.next; it != &s.held; it = it.next {
			if !now.Before(it.nextExtend) {
				due = append(due, it.d)
				it.nextExtend = now.Add(it.every)
			}
		}
		s.heldMu.Unlock()
		if len(due) == 0 {
			continue
		}
		ectx, cancel := context.WithTimeout(ctx, s.c.opts.SettleTimeout)
		if err := s.ext.Extend(ectx, due); err != nil {
			s.log.Warn(s.c.opts.Name+": extending ack deadlines failed; the broker may redeliver", "topic", s.topic, "group", s.o.Group, "messages", len(due), "error", err)
		}
		cancel()
	}
}

// read is the Stream.Read loop.
func (s *subscription) read(l driver.Log, h messaging.Handler) error {
	defer l.Close()
	fr := newFetchRetry(s)
	for {
		msgs, err := l.Next(s.fetchCtx)
		if err == nil {
			fr.ok() // before the handler runs
		}
		for _, m := range msgs {
			if err := s.fetchCtx.Err(); err != nil {
				return err
			}
			m.Attempt = 1
			if r := dispatch.Invoke(s.handlerCtx, h, m, 0); r.Err != nil {
				return fmt.Errorf("engine: read %s at offset %s: handler: %w", s.topic, m.Offset, r.Err)
			}
		}
		if err == nil {
			continue
		}
		if err := fr.retry(err); err != nil {
			return err
		}
	}
}

var _ messaging.Subscription = (*subscription)(nil)

// settleQueue is the unbounded queue between the handlers and the settler:
// pushing never blocks.
type settleQueue struct {
	mu     sync.Mutex
	q      []driver.Settlement
	closed bool
	wake   chan struct{}
}

func (q *settleQueue) push(st driver.Settlement) {
	q.mu.Lock()
	q.q = append(q.q, st)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *settleQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns up to n queued settlements, blocking while the queue is empty
// and open; false once it is closed and empty. buf, a batch the caller is
// done with, is reused, so a steady flow allocates nothing.
func (q *settleQueue) take(n int, buf []driver.Settlement) ([]driver.Settlement, bool) {
	for {
		q.mu.Lock()
		if len(q.q) > 0 {
			var out []driver.Settlement
			if len(q.q) <= n {
				out, q.q = q.q, buf[:0]
			} else {
				out = append(buf[:0], q.q[:n]...)
				q.q = append(q.q[:0], q.q[n:]...)
			}
			q.mu.Unlock()
			return out, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}

// credits is a counting semaphore with one waiter (the fetch loop) that
// takes and gives back any number of credits in one step: a settled batch
// of hundreds of deliveries costs one lock, not a channel operation each,
// and the fetch loop sees all of it at once.
type credits struct {
	mu   sync.Mutex
	n    int
	wake chan struct{} // capacity 1: a put since the waiter last looked
}

// take takes between 1 and limit credits, blocking while there are none until
// ctx ends.
func (c *credits) take(ctx context.Context, limit int) (int, error) {
	for {
		c.mu.Lock()
		if c.n > 0 {
			got := min(c.n, limit)
			c.n -= got
			c.mu.Unlock()
			return got, nil
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (c *credits) put(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// readyQueue holds the local redeliveries of a SubscribeBatch subscription
// and wakes its blocked fetch when one arrives.
type readyQueue struct {
	mu   sync.Mutex
	its  []*item
	wake context.CancelFunc
}

func (q *readyQueue) push(its ...*item) {
	q.mu.Lock()
	q.its = append(q.its, its...)
	wake := q.wake
	q.mu.Unlock()
	if wake != nil {
		wake()
	}
}

func (q *readyQueue) take() []*item {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.its
	q.its = nil
	return out
}

func (q *readyQueue) setWake(f context.CancelFunc) {
	q.mu.Lock()
	q.wake = f
	pending := len(q.its) > 0
	q.mu.Unlock()
	if f != nil && pending {
		f()
	}
}
