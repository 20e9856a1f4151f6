package dispatch

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/msgkit/messaging"
)

// Delivery is one fetched message and the adapter's state needed to settle it.
type Delivery struct {
	Msg *messaging.Message
	// Token is the adapter's handle for acking (a JetStream message, a Redis
	// stream ID, a delivery tag...).
	Token any
}

// SettleFunc acknowledges, nacks, terminates or releases a delivery. It is
// called exactly once per submitted delivery, from the goroutine that handled
// it (its worker, or the caller of Inline), so calls for one key are in
// order. It must not block for long.
type SettleFunc func(d Delivery, r Result)

// Pool runs a handler on deliveries with a fixed number of workers. Deliveries
// with the same non-empty Key always go to the same worker, so they are handled
// one at a time in submission order; deliveries without a key are spread over
// the workers in turn. A pool of one worker may run a delivery in the
// submitting goroutine instead (Inline), never beside the worker.
type Pool struct {
	ctx         context.Context
	h           messaging.Handler
	settle      SettleFunc
	maxAttempts int
	queues      []chan Delivery
	seed        maphash.Seed
	next        atomic.Uint64
	wg          sync.WaitGroup
	closeOnce   sync.Once
	stopping    atomic.Bool
	stop        context.Context // see StopWith; nil: never

	// With one worker (one is set): pending counts the deliveries
	// submitted and not yet through the worker (queued, in its hand or
	// running), and exec is held around each handler call, so that Inline
	// runs one only when nothing is pending and never beside the worker.
	one     bool
	pending atomic.Int64
	exec    sync.Mutex
}

// NewPool starts concurrency workers that call h with ctx (the handler
// context) and then settle. queued is the total number of deliveries that may
// wait for a worker (the prefetch beyond the ones being handled).
func NewPool(ctx context.Context, concurrency, queued int, h messaging.Handler, settle SettleFunc, maxAttempts int) *Pool {
	concurrency = max(concurrency, 1)
	per := max(queued/concurrency, 1)
	p := &Pool{ctx: ctx, h: h, settle: settle, maxAttempts: maxAttempts, seed: maphash.MakeSeed(), one: concurrency == 1}
	p.queues = make([]chan Delivery, concurrency)
	for i := range p.queues {
		q := make(chan Delivery, per)
		p.queues[i] = q
		p.wg.Add(1)
		go p.work(q)
	}
	return p
}

func (p *Pool) work(q chan Delivery) {
	defer p.wg.Done()
	for d := range q {
		if p.one {
			p.runAlone(d)
		} else {
			p.run(d)
		}
	}
}

// runAlone is run for a pool of one worker: never beside the worker or an
// Inline call, and no longer pending once done (see pending).
func (p *Pool) runAlone(d Delivery) {
	p.exec.Lock()
	p.run(d)
	p.exec.Unlock()
	p.pending.Add(-1)
}

// run handles d, or releases it once the pool stops.
func (p *Pool) run(d Delivery) {
	// A delivery queued while the handler context ended is not
	// handled: the handler could only fail it, counting an attempt.
	if p.stopping.Load() || p.ctx.Err() != nil || (p.stop != nil && p.stop.Err() != nil) {
		p.settle(d, Result{Outcome: Release})
		return
	}
	p.settle(d, Invoke(p.ctx, p.h, d.Msg, p.maxAttempts))
}

// Inline handles d in the caller's goroutine, as the worker would, and
// reports true when the pool has one worker and nothing pending (queued, in
// the worker's hand or running): d is then next in submission order, and
// reaches the handler without a hand-over between goroutines. Otherwise it
// reports false without taking d, which the caller then submits. A
// delivery submitted while d runs (from another goroutine) waits for it.
// Like Submit, it must not be called during or after Close.
func (p *Pool) Inline(d Delivery) bool {
	if !p.one || !p.pending.CompareAndSwap(0, 1) {
		return false
	}
	p.runAlone(d)
	return true
}

// Submit queues d for its worker, blocking while that worker's queue is full
// (backpressure). It returns false without taking d when ctx or the handler
// context is done first; the caller then still owns d and must release it.
//
// The handler context is checked as well because a context's Done closes
// before its children are cancelled: a fetch loop whose context derives
// from the handler context can see a message that a handler just failed
// with ctx.Err() while its own context still looks live.
func (p *Pool) Submit(ctx context.Context, d Delivery) bool {
	if ctx.Err() != nil || p.ctx.Err() != nil {
		return false
	}
	q := p.queues[p.worker(d.Msg.Key)]
	if p.one {
		p.pending.Add(1)
	}
	select {
	case q <- d:
		return true
	default:
	}
	select {
	case q <- d:
		return true
	case <-ctx.Done():
	case <-p.ctx.Done():
	}
	if p.one {
		p.pending.Add(-1)
	}
	return false
}

func (p *Pool) worker(key string) int {
	n := len(p.queues)
	if n == 1 {
		return 0
	}
	if key == "" {
		return int(p.next.Add(1) % uint64(n))
	}
	return int(maphash.String(p.seed, key) % uint64(n))
}

// StopWith makes the workers settle the deliveries they take once ctx has
// ended with Release instead of handling them (a subscription stopping
// releases what it fetched and did not hand to a handler); the handlers
// running go on, and Close must still be called. It must be called before
// the first Submit.
func (p *Pool) StopWith(ctx context.Context) { p.stop = ctx }

// Close stops the pool after the handlers in flight return: deliveries still
// queued are settled with Release. It waits for the workers and is
// idempotent. Submit must not be called during or after Close.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.stopping.Store(true)
		for _, q := range p.queues {
			close(q)
		}
	})
	p.wg.Wait()
}
