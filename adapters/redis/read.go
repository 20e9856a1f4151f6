package redis

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// resolveStart turns "$" into the stream's current last ID, so that a read
// started now sees everything added after the call returns.
func (c *Client) resolveStart(ctx context.Context, key, start string) (string, error) {
	if start != "$" {
		return start, nil
	}
	return c.lastID(ctx, key)
}

// reader follows a stream with XREAD from an exclusive start ID.
type reader struct {
	c     *Client
	topic string
	key   string
	last  string
	args  goredis.XReadArgs
}

func (c *Client) newReader(topic, key, start string) *reader {
	r := &reader{c: c, topic: topic, key: key, last: start}
	r.args = goredis.XReadArgs{Streams: []string{key, start}, Count: maxReadCount, Block: c.cfg.block}
	return r
}

// next returns the next entries (none when the block time passed), retrying
// transient errors until ctx ends.
func (r *reader) next(ctx context.Context, bo interface{ NextBackOff() time.Duration }) ([]*messaging.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := r.read(ctx, r.args.Count, r.args.Block)
		if err != nil {
			if errors.Is(err, goredis.ErrClosed) {
				return nil, r.c.opError("read "+r.topic, err)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.c.cfg.logger.Warn("redis: XREAD failed; retrying", "topic", r.topic, "error", err)
			t := time.NewTimer(bo.NextBackOff())
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			continue
		}
		return out, nil
	}
}

// read runs one XREAD for up to count entries after the last one read,
// blocking up to block.
func (r *reader) read(ctx context.Context, count int64, block time.Duration) ([]*messaging.Message, error) {
	args := r.args
	args.Streams = []string{r.key, r.last}
	args.Count, args.Block = count, block
	res, err := r.c.rc.XRead(ctx, &args).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*messaging.Message
	for _, s := range res {
		for _, x := range s.Messages {
			m := decodeMap(r.topic, x.ID, x.Values)
			m.Attempt = 1
			out = append(out, m)
			r.last = x.ID
		}
	}
	return out, nil
}

// Read delivers topic's stream from "from" on, in order, to h; see
// messaging.Stream. It uses XREAD, so it never touches consumer groups.
// Offsets are stream entry IDs; AtTime(t) starts at the first entry whose ID
// time (the server's clock when the entry was added) is at or after t.
func (c *Client) Read(ctx context.Context, topic string, from messaging.Position, h messaging.Handler) (messaging.Subscription, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("read: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("read: topic: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("read: nil handler: %w", messaging.ErrInvalidOption)
	}
	start, err := exclusiveStart(from)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	key := c.StreamKey(topic)
	if start, err = c.resolveStart(ctx, key, start); err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		return nil, err
	}
	r := c.newReader(topic, key, start)
	go func() {
		ctx := sub.FetchContext()
		bo := newBackoff()
		for {
			msgs, err := r.next(ctx, bo)
			if err != nil {
				sub.Finish(err)
				return
			}
			bo.Reset()
			for _, m := range msgs {
				if err := ctx.Err(); err != nil {
					sub.Finish(err)
					return
				}
				if res := dispatch.Invoke(sub.HandlerContext(), h, m, 0); res.Err != nil {
					sub.Finish(fmt.Errorf("read %s at offset %s: handler: %w", topic, m.Offset, res.Err))
					return
				}
			}
		}
	}()
	return sub, nil
}

// subscribeEphemeral runs a group-less subscription: XREAD from start, the
// runner (pool or batches) for the handler, and in-process redelivery of
// failed messages (nothing is kept in Redis).
func (c *Client) subscribeEphemeral(ctx context.Context, topic, key, start string, md mode) (messaging.Subscription, error) {
	start, err := c.resolveStart(ctx, key, start)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		return nil, err
	}
	e := &ephemeral{c: c, topic: topic, kick: make(chan struct{}, 1)}
	run := md.runner(sub.HandlerContext(), e.settle, md.limit)
	r := c.newReader(topic, key, start)
	r.args.Count = int64(md.count)
	go func() {
		fctx := sub.FetchContext()
		errs := make(chan error, 2)
		var wg sync.WaitGroup
		wg.Go(func() { errs <- e.retries(fctx, run) })
		wg.Go(func() {
			bo := newBackoff()
			for {
				msgs, err := r.next(fctx, bo)
				if err != nil {
					errs <- err
					return
				}
				bo.Reset()
				msgs = fill(fctx, msgs, md.count, md.fill, func(count int, block time.Duration) ([]*messaging.Message, error) {
					return r.read(fctx, int64(count), block)
				})
				// What is not taken is dropped: an ephemeral
				// subscription keeps no state once it ends.
				if ds := deliveries(msgs); run.submit(fctx, ds) < len(ds) {
					errs <- fctx.Err()
					return
				}
			}
		})
		first := <-errs
		sub.Stop()
		wg.Wait()
		if second := <-errs; first == nil || isCtxErr(first) {
			first = second
		}
		run.close()
		sub.Finish(first)
	}()
	return sub, nil
}

// ephemeral holds the in-process redeliveries of a group-less subscription.
type ephemeral struct {
	c     *Client
	topic string
	mu    sync.Mutex
	due   retryHeap
	kick  chan struct{}
}

func (e *ephemeral) settle(d dispatch.Delivery, r dispatch.Result) {
	switch r.Outcome {
	case dispatch.Nack:
		m := d.Msg.Clone()
		m.Attempt++
		e.mu.Lock()
		heap.Push(&e.due, retryItem{at: time.Now().Add(r.Delay), msg: m})
		e.mu.Unlock()
		select {
		case e.kick <- struct{}{}:
		default:
		}
	case dispatch.Term:
		e.c.cfg.logger.Warn("redis: message not redelivered", "topic", e.topic, "id", d.Msg.ID, "offset", d.Msg.Offset, "attempt", d.Msg.Attempt, "error", r.Err)
	}
	// Ack needs nothing; Release drops the message: an ephemeral
	// subscription keeps no state once it ends.
}

// retries submits due redeliveries until ctx ends.
func (e *ephemeral) retries(ctx context.Context, run runner) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		e.mu.Lock()
		var ready []*messaging.Message
		now := time.Now()
		for e.due.Len() > 0 {
			if next := e.due[0].at; next.After(now) {
				wait = next.Sub(now)
				break
			}
			ready = append(ready, heap.Pop(&e.due).(retryItem).msg)
		}
		e.mu.Unlock()
		if ds := deliveries(ready); run.submit(ctx, ds) < len(ds) {
			return ctx.Err()
		}
		if len(ready) > 0 {
			continue
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-e.kick:
		}
	}
}

type retryItem struct {
	at  time.Time
	msg *messaging.Message
}

type retryHeap []retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retryItem)) }
func (h *retryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func deliveries(msgs []*messaging.Message) []dispatch.Delivery {
	ds := make([]dispatch.Delivery, len(msgs))
	for i, m := range msgs {
		ds[i] = dispatch.Delivery{Msg: m}
	}
	return ds
}
