package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// streamPrefetch is the credit a stream reader gives the broker.
const streamPrefetch = 256

// Read delivers topic's log from "from" on, in order, to h; see
// messaging.Stream. It needs a client built WithStreams (else it fails with
// ErrUnsupported): the topic's stream queue "<topic>~~stream", bound to its
// exchange, holds every message published since the stream was declared (by
// any client with WithStreams touching the topic). Message.Offset is the
// stream offset, a decimal integer. AtTime is resolved by the broker to a
// stream chunk (second resolution) and refined by skipping messages whose
// publish Time is before the requested time. After a lost connection the
// read resumes right after the last message handled; a read from Latest
// that has handled nothing yet resumes from the then latest position, so it
// can miss what was published during the outage.
func (c *Client) Read(ctx context.Context, topic string, from messaging.Position, h messaging.Handler) (messaging.Subscription, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("read: %w", messaging.ErrClosed)
	}
	if !c.cfg.streams {
		return nil, fmt.Errorf("read %s: %w (build the client WithStreams(true) or streams=true)", topic, messaging.ErrUnsupported)
	}
	if err := validTopic(topic); err != nil {
		return nil, fmt.Errorf("read: topic: %w", err)
	}
	if err := from.Validate(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("read: nil handler: %w", messaging.ErrInvalidOption)
	}
	offset, err := streamOffset(from)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	r := &reader{c: c, topic: topic, h: h}
	if from.Kind == messaging.PositionAtTime {
		r.notBefore = from.Time
	}
	ch, deliveries, err := r.start(ctx, offset)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		_ = ch.Close()
		return nil, err
	}
	r.sub = sub
	go func() { sub.Finish(r.run(ch, deliveries)) }()
	return sub, nil
}

// streamOffset is the x-stream-offset argument for a position.
func streamOffset(p messaging.Position) (any, error) {
	switch p.Kind {
	case messaging.PositionEarliest:
		return "first", nil
	case messaging.PositionLatest:
		return "next", nil
	case messaging.PositionAtOffset, messaging.PositionAfterOffset:
		n, err := strconv.ParseInt(p.Offset, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: RabbitMQ stream offsets are decimal integers >= 0, got %v", messaging.ErrInvalidOption, p)
		}
		if p.Kind == messaging.PositionAfterOffset {
			n++
		}
		return n, nil
	case messaging.PositionAtTime:
		// Stream timestamps have second resolution: start a second early
		// and skip what is older.
		return p.Time.Add(-time.Second).Truncate(time.Second), nil
	}
	return nil, p.Validate()
}

type reader struct {
	c         *Client
	topic     string
	h         messaging.Handler
	sub       *dispatch.Subscription
	notBefore time.Time
	next      int64 // offset after the last message handled
	started   bool  // next is valid
}

func (r *reader) start(ctx context.Context, offset any) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, _, err := r.c.conn.channel(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := r.c.declareTopic(ctx, ch, r.topic); err != nil {
		_ = ch.Close()
		return nil, nil, err
	}
	if err := ch.Qos(streamPrefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("qos: %w", err)
	}
	d, err := ch.Consume(streamQueue(r.topic), "", false, false, false, false, amqp.Table{"x-stream-offset": offset})
	if err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("consume stream: %w", err)
	}
	return ch, d, nil
}

func (r *reader) run(ch *amqp.Channel, deliveries <-chan amqp.Delivery) error {
	ctx := r.sub.FetchContext()
	defer func() { _ = ch.Close() }()
	for {
		err := r.consume(ctx, deliveries)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if !ch.IsClosed() {
			return fmt.Errorf("read %s: %w", r.topic, ErrConsumerCancelled)
		}
		// Lost: resume after the last message handled.
		var offset any = "next"
		if r.started {
			offset = r.next
		}
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = r.c.cfg.reconnectMin, r.c.cfg.reconnectMax
		type started struct {
			ch *amqp.Channel
			d  <-chan amqp.Delivery
		}
		st, err := backoff.Retry(ctx, func() (started, error) {
			ch, d, err := r.start(ctx, offset)
			if errors.Is(err, messaging.ErrClosed) || errors.Is(err, ErrConnectionLost) {
				return started{}, backoff.Permanent(err)
			}
			return started{ch, d}, err
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
		if err != nil {
			return err
		}
		ch, deliveries = st.ch, st.d
	}
}

// consume handles deliveries until ctx is done (nil), the channel closes
// (nil) or the handler fails (its error).
func (r *reader) consume(ctx context.Context, deliveries <-chan amqp.Delivery) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return nil
			}
			off, ok := headerInt(d.Headers, "x-stream-offset")
			if !ok {
				return fmt.Errorf("read %s: delivery without x-stream-offset", r.topic)
			}
			if r.started && off < r.next {
				_ = d.Ack(false) // already handled before a reconnect
				continue
			}
			m := message(&d, r.topic)
			m.Offset = strconv.FormatInt(off, 10)
			m.Attempt = 1
			if !r.notBefore.IsZero() && m.Time.Before(r.notBefore) {
				_ = d.Ack(false)
				continue
			}
			r.notBefore = time.Time{} // log order from here on
			if err := ctx.Err(); err != nil {
				return nil
			}
			res := dispatch.Invoke(r.sub.HandlerContext(), r.h, m, 0)
			if res.Err != nil {
				return fmt.Errorf("read %s at offset %d: handler: %w", r.topic, off, res.Err)
			}
			r.next, r.started = off+1, true
			// Stream acks only return credit to the broker.
			_ = d.Ack(false)
		}
	}
}
