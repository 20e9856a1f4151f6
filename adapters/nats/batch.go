package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// idleFetch bounds the pull request with which a batch subscription waits
// for the first message of a batch; the server sends idle heartbeats
// meanwhile, so a lost server is noticed within 10s.
const idleFetch = 30 * time.Second

// SubscribeBatch delivers topic's messages to h in batches; see
// messaging.BatchConsumer. The consumer is the one Subscribe would use
// (group or ephemeral, AckDeadline, MaxAttempts, RedeliveryBackoff alike),
// and each message is settled by its entry of h's result as Subscribe
// settles a handler's result.
//
// A batch is what pull requests of at most BatchSize messages return: while
// messages keep coming, one request of BatchSize that the server holds open
// at most BatchWait for the batch to fill; when none are waiting, a request
// for one message that waits for it (re-sent every 30s), then one for up to
// BatchSize-1 more that waits at most BatchWait. nats.go sets no lower bound
// on a pull request's wait, so BatchWait is used as given; the server ends
// the request, so nothing it sent is lost in between. h is never called with
// an empty batch. While a batch is filled and while h runs, every message of
// it gets in-progress signals as under Subscribe. When the subscription
// ends, messages fetched for a batch h has not been given are nak'ed back at
// once (Close waits at most BatchWait for a fill in progress); a message in
// transit from the server when the wait for a first message is cancelled is
// redelivered after its ack wait. A failing pull (server restart, lost
// consumer) is retried with backoff until the subscription ends.
//
// Core mode has no pull: SubscribeBatch fails with messaging.ErrUnsupported.
func (c *Client) SubscribeBatch(ctx context.Context, topic string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeBatchArgs(c.closed.Load(), topic, h, opts)
	if err != nil {
		return nil, err
	}
	if c.cfg.mode == ModeCore {
		return nil, fmt.Errorf("subscribe batch: core NATS cannot fetch batches: %w", messaging.ErrUnsupported)
	}
	cons, removeEphemeral, err := c.consumer(ctx, topic, o)
	if err != nil {
		return nil, fmt.Errorf("subscribe batch to %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		removeEphemeral()
		return nil, err
	}
	tr := newTracker(o)
	settle := c.settler(topic, o, tr)
	hbStop := make(chan struct{})
	var hbDone sync.WaitGroup
	hbDone.Go(func() { tr.heartbeat(hbStop) })
	go func() {
		err := c.runBatches(sub, cons, topic, o, h, tr, settle)
		close(hbStop)
		hbDone.Wait()
		removeEphemeral()
		sub.Finish(err)
	}()
	return sub, nil
}

// runBatches fetches batches and hands each to h, one at a time, until the
// subscription stops; failed fetches are retried with backoff.
func (c *Client) runBatches(sub *dispatch.Subscription, cons jetstream.Consumer, topic string, o messaging.SubscribeOptions, h messaging.BatchHandler, tr *tracker, settle dispatch.SettleFunc) error {
	ctx := sub.FetchContext()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	busy := false
	for {
		batch, err := c.fetchBatch(ctx, cons, topic, o, busy, tr)
		if ctx.Err() != nil {
			for _, d := range batch {
				settle(d, dispatch.Result{Outcome: dispatch.Release})
			}
			return ctx.Err()
		}
		busy = len(batch) > 0
		if busy {
			msgs := make([]*messaging.Message, len(batch))
			for i, d := range batch {
				msgs[i] = d.Msg
			}
			for i, r := range dispatch.InvokeBatch(sub.HandlerContext(), h, msgs, o.MaxAttempts) {
				settle(batch[i], r)
			}
		}
		if err == nil {
			bo.Reset()
			continue
		}
		if c.nc.IsClosed() {
			return fmt.Errorf("consume %s: %w", topic, c.wrapConnErr(err))
		}
		wait := bo.NextBackOff()
		c.cfg.logger.Warn("nats: fetching a batch failed; retrying", "topic", topic, "group", o.Group, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// fetchBatch returns the next batch, tracked (possibly empty, with or
// without an error). busy says the previous batch was not empty, so messages
// are probably waiting: one request of BatchSize held at most BatchWait; if
// that returns nothing, or when not busy, a request waiting for one message,
// then one for the rest of the batch held at most BatchWait.
func (c *Client) fetchBatch(ctx context.Context, cons jetstream.Consumer, topic string, o messaging.SubscribeOptions, busy bool, tr *tracker) ([]dispatch.Delivery, error) {
	if busy {
		batch, err := c.fetch(cons, topic, o, o.BatchSize, tr, jetstream.FetchMaxWait(o.BatchWait))
		if len(batch) > 0 || err != nil || ctx.Err() != nil {
			return batch, err
		}
	}
	fctx, cancel := context.WithTimeout(ctx, idleFetch)
	batch, err := c.fetch(cons, topic, o, 1, tr, jetstream.FetchContext(fctx))
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = nil // our bound of the wait, not the subscription's end
	}
	if len(batch) == 0 || err != nil || ctx.Err() != nil || o.BatchSize == 1 {
		return batch, err
	}
	more, err := c.fetch(cons, topic, o, o.BatchSize-1, tr, jetstream.FetchMaxWait(o.BatchWait))
	return append(batch, more...), err
}

// fetch sends one pull request for up to n messages and returns, tracked,
// what it brought once it ended.
func (c *Client) fetch(cons jetstream.Consumer, topic string, o messaging.SubscribeOptions, n int, tr *tracker, opt jetstream.FetchOpt) ([]dispatch.Delivery, error) {
	mb, err := cons.Fetch(n, opt)
	if err != nil {
		return nil, err
	}
	var batch []dispatch.Delivery
	for jm := range mb.Messages() {
		m := toMessage(jm, topic, o.Group)
		tr.add(jm, m.Attempt)
		batch = append(batch, dispatch.Delivery{Msg: m, Token: jm})
	}
	return batch, mb.Error()
}
