package redis

import (
	"context"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// SubscribeBatch delivers topic's messages to h in batches; see
// messaging.BatchConsumer.
//
// It is Subscribe with the same fetch, reclaim and settle paths, and with
// the handler called once per read: a batch is what one XREADGROUP (XREAD
// without a Group option) returned, or what one reclaim (XAUTOCLAIM of
// entries past their ack deadline) took over; the two are never merged. A
// read that finds the stream empty blocks for the client's block time
// (WithBlock, default 1s), so an idle subscription makes one round trip per
// block time, not per BatchWait. When a read returns fewer than BatchSize
// entries the subscription keeps reading, each read blocking for what is
// left of BatchWait, until the batch is full or BatchWait has passed since
// the first read returned; so BatchWait adds latency only to batches that
// are not full, and only while entries keep arriving or the wait lasts.
//
// While a batch runs the subscription extends the ack deadline of each of
// its messages, as for a running Handler, and it may read the next batch
// (at most BatchSize more entries held). Each message is settled by its own
// result after h returns: XACK, dead-letter or redelivery as for Subscribe.
// Close lets the running batch finish, settles it, and releases a batch read
// but not started; like Subscribe it may wait for a blocked read, up to the
// block time.
func (c *Client) SubscribeBatch(ctx context.Context, topic string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeBatchArgs(c.closed.Load(), topic, h, opts)
	if err != nil {
		return nil, err
	}
	size := o.BatchSize
	return c.subscribe(ctx, topic, o, mode{
		limit: 2 * size, // the running batch and the next one
		want:  size,
		count: size,
		fill:  o.BatchWait,
		runner: func(hctx context.Context, settle dispatch.SettleFunc, bound int) runner {
			return newBatchRunner(hctx, h, settle, o.MaxAttempts, size, bound)
		},
	})
}

// mode is how a subscription reads and runs its handler: one message at a
// time in a worker pool (Subscribe) or one batch per read (SubscribeBatch).
type mode struct {
	limit int           // most entries held (read and not yet settled)
	want  int           // least free room (limit minus held) before a read
	count int           // most entries per read
	fill  time.Duration // SubscribeBatch: how long to read more into a batch that is not full
	// runner starts the handler side. bound is how many entries a batch
	// runner may queue before submit waits (0: no bound, held entries are
	// bounded by limit already).
	runner func(ctx context.Context, settle dispatch.SettleFunc, bound int) runner
}

// runner runs the handler on the entries the read loops submit and settles
// each with settle.
type runner interface {
	// submit hands over ds, which one read returned. It returns how many
	// it took; when ctx ends first, the caller still owns ds[n:] and must
	// release them. It does not take anything once ctx is done.
	submit(ctx context.Context, ds []dispatch.Delivery) int
	// close waits for the handlers in flight (and settles their results)
	// and releases what was taken but not started. submit must not be
	// called during or after close.
	close()
}

// poolRunner runs a Handler per message in a dispatch.Pool.
type poolRunner struct{ p *dispatch.Pool }

func newPoolRunner(ctx context.Context, h messaging.Handler, settle dispatch.SettleFunc, o messaging.SubscribeOptions) poolRunner {
	return poolRunner{dispatch.NewPool(ctx, o.Concurrency, o.Prefetch-o.Concurrency, h, settle, o.MaxAttempts)}
}

func (r poolRunner) submit(ctx context.Context, ds []dispatch.Delivery) int {
	for i, d := range ds {
		// Submit can take d even when ctx is done; a stopping
		// subscription must not start handlers.
		if ctx.Err() != nil || !r.p.Submit(ctx, d) {
			return i
		}
	}
	return len(ds)
}

func (r poolRunner) close() { r.p.Close() }

// batchRunner runs a BatchHandler on one submitted slice at a time, in
// submission order, in a goroutine of its own.
type batchRunner struct {
	ctx         context.Context
	h           messaging.BatchHandler
	settle      dispatch.SettleFunc
	maxAttempts int
	size        int // most messages per batch
	bound       int // most queued messages before submit waits; 0: no bound

	mu      sync.Mutex
	queue   [][]dispatch.Delivery
	queued  int
	closed  bool
	shrunk  chan struct{} // closed (and replaced) when the queue shrinks
	wake    chan struct{}
	stopped chan struct{}
}

func newBatchRunner(ctx context.Context, h messaging.BatchHandler, settle dispatch.SettleFunc, maxAttempts, size, bound int) *batchRunner {
	r := &batchRunner{
		ctx: ctx, h: h, settle: settle, maxAttempts: maxAttempts, size: size, bound: bound,
		shrunk: make(chan struct{}), wake: make(chan struct{}, 1), stopped: make(chan struct{}),
	}
	go r.loop()
	return r
}

// submit queues ds as one batch (split when longer than the batch size,
// which only in-process redeliveries of a group-less subscription can be).
func (r *batchRunner) submit(ctx context.Context, ds []dispatch.Delivery) int {
	taken := 0
	for len(ds) > 0 {
		n := min(len(ds), r.size)
		r.mu.Lock()
		if r.bound > 0 && r.queued > 0 && r.queued+n > r.bound {
			shrunk := r.shrunk
			r.mu.Unlock()
			select {
			case <-shrunk:
				continue
			case <-ctx.Done():
				return taken
			}
		}
		if ctx.Err() != nil {
			r.mu.Unlock()
			return taken
		}
		r.queue = append(r.queue, ds[:n:n])
		r.queued += n
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
		taken += n
		ds = ds[n:]
	}
	return taken
}

func (r *batchRunner) loop() {
	defer close(r.stopped)
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.closed {
			r.mu.Unlock()
			<-r.wake
			r.mu.Lock()
		}
		if r.closed {
			rest := r.queue
			r.queue = nil
			r.mu.Unlock()
			for _, ds := range rest {
				for _, d := range ds {
					r.settle(d, dispatch.Result{Outcome: dispatch.Release})
				}
			}
			return
		}
		ds := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.queued -= len(ds)
		close(r.shrunk)
		r.shrunk = make(chan struct{})
		r.mu.Unlock()
		r.run(ds)
	}
}

// run calls the handler once for ds and settles each message by its result.
func (r *batchRunner) run(ds []dispatch.Delivery) {
	msgs := make([]*messaging.Message, len(ds))
	for i, d := range ds {
		msgs[i] = d.Msg
	}
	for i, res := range dispatch.InvokeBatch(r.ctx, r.h, msgs, r.maxAttempts) {
		r.settle(ds[i], res)
	}
}

func (r *batchRunner) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	<-r.stopped
}

// fill completes a batch that a read started: while it holds fewer than
// want entries, it reads more, each read blocking for what is left of wait,
// and stops at the first read that returns nothing or fails (the next
// regular read reports the error) or when ctx ends. A block time under 1ms
// is not read with: BLOCK 0 would wait forever.
func fill[T any](ctx context.Context, got []T, want int, wait time.Duration, read func(count int, block time.Duration) ([]T, error)) []T {
	if wait <= 0 || len(got) == 0 || len(got) >= want {
		return got
	}
	deadline := time.Now().Add(wait)
	for len(got) < want && ctx.Err() == nil {
		left := time.Until(deadline)
		if left < time.Millisecond {
			break
		}
		more, err := read(want-len(got), left)
		if err != nil || len(more) == 0 {
			break
		}
		got = append(got, more...)
	}
	return got
}
