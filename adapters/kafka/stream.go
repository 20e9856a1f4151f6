package kafka

import (
	"context"
	"fmt"
	"sync"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// Read delivers topic's records from "from" on to h, one at a time, without
// a group and without committing anything; see messaging.Stream. Records
// of one partition arrive in log order; partitions are read concurrently and
// interleave. Positions:
//
//   - Earliest / Latest: the first retained / the next record of every
//     partition, resolved before Read returns.
//   - AtTime: per partition, the first record whose timestamp (the publish
//     time, in milliseconds) is at or after the time (offset-for-time
//     lookup).
//   - AtOffset / AfterOffset with a Message.Offset "p:o": partition p starts
//     at (after) offset o; the other partitions start at their earliest
//     record, so nothing published after the position is missed. Several
//     partitions can be positioned at once with "0:12,1:40".
//
// A handler error ends the read; Err reports it.
func (c *Client) Read(ctx context.Context, topic string, from messaging.Position, h messaging.Handler) (messaging.Subscription, error) {
	if err := dispatch.ReadArgs(c.closed.Load(), topic, from, h); err != nil {
		return nil, err
	}
	if from.Kind == messaging.PositionAtOffset || from.Kind == messaging.PositionAfterOffset {
		if _, err := parseOffsets(from.Offset); err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
	if err := c.ensureTopic(ctx, topic, c.cfg.autoCreate); err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	starts, err := c.resolve(ctx, topic, parts, from)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		return nil, err
	}
	go func() { sub.Finish(c.read(sub, topic, starts, h)) }()
	return sub, nil
}

func (c *Client) read(sub *dispatch.Subscription, topic string, starts map[int]int64, h messaging.Handler) error {
	ctx, cancel := context.WithCancel(sub.FetchContext())
	msgs := make(chan *messaging.Message, 64)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for p, off := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.readPartition(ctx, topic, p, off, 64, func(rec *kafkago.Message) bool {
				select {
				case msgs <- fromRecord(rec, "", 1):
					return true
				case <-ctx.Done():
					return false
				}
			})
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if r := dispatch.Invoke(sub.HandlerContext(), h, m, 0); r.Err != nil {
				return fmt.Errorf("read %s at offset %s: handler: %w", topic, m.Offset, r.Err)
			}
		}
	}
}
