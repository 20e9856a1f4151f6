package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// ErrConsumerCancelled ends a subscription whose queue the broker cancelled
// the consumer of, usually because the queue was deleted (DeleteTopic).
var ErrConsumerCancelled = errors.New("rabbitmq: consumer cancelled by the broker (queue deleted?)")

// retryDelayStep is the granularity of RetryAfter delays: each distinct delay,
// rounded up to it, gets its own TTL queue.
const retryDelayStep = 100 * time.Millisecond

// settleTimeout bounds one acknowledgement or retry publish after a handler.
const settleTimeout = 10 * time.Second

// token is what a dispatch.Delivery carries: the AMQP delivery and the
// acker of the channel it came on.
type token struct {
	d amqp.Delivery
	a *acker
}

// subscription is one Subscribe call's consumer: it (re)opens a channel,
// declares its queue, consumes, and feeds the pool.
type subscription struct {
	c     *Client
	topic string
	o     messaging.SubscribeOptions
	queue string // the group's queue; empty for an ephemeral subscription
	sub   *dispatch.Subscription
	pool  *dispatch.Pool

	current *amqp.Channel // used by run's goroutine only
	acks    *acker        // current's acker
}

// Subscribe delivers topic's messages to h; see messaging.Consumer.
//
// With Group(g) the subscription consumes g's durable quorum queue
// "<topic>~<g>" (declared and bound to the topic's exchange if missing), shared
// by every subscription of g. Without a group it consumes an exclusive,
// auto-deleted queue of its own that lives as long as its connection. QoS
// prefetch is the Prefetch option. Attempt comes from the quorum queue's
// x-delivery-count, so it survives consumer restarts. After a lost
// connection the subscription re-declares its queue and resumes; messages
// in flight then are redelivered (at-least-once). An ephemeral subscription
// misses what is published while it is disconnected.
//
// A group starts when its queue is created (Provision creates it ahead):
// RabbitMQ queues hold only what is routed to them, so StartAt other than
// Earliest for a group, or other than Latest without a group, fails with
// ErrUnsupported; use Stream.Read for replay.
func (c *Client) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeArgs(c.closed.Load(), topic, h, c.cfg.prefetch, opts)
	if err == nil {
		err = validTopic(topic)
	}
	if err != nil {
		return nil, err
	}
	if o.Group != "" && o.StartAt.Kind != messaging.PositionEarliest {
		return nil, fmt.Errorf("subscribe %s: group %s starting at %v: %w (a group queue receives messages from its creation on)", topic, o.Group, o.StartAt, messaging.ErrUnsupported)
	}
	if o.Group == "" && o.StartAt.Kind != messaging.PositionLatest {
		return nil, fmt.Errorf("subscribe %s: ephemeral subscription starting at %v: %w (use Read)", topic, o.StartAt, messaging.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s := &subscription{c: c, topic: topic, o: o}
	if o.Group != "" {
		s.queue = groupQueue(topic, o.Group)
	}
	ch, deliveries, err := s.start(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		_ = ch.Close()
		return nil, err
	}
	s.sub = sub
	s.pool = dispatch.NewPool(sub.HandlerContext(), o.Concurrency, o.Prefetch-o.Concurrency, h, s.settle, o.MaxAttempts)
	go s.run(ch, deliveries)
	return s.sub, nil
}

// start opens a channel on the current connection, declares the queue and
// starts consuming.
func (s *subscription) start(ctx context.Context) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, _, err := s.c.conn.channel(ctx)
	if err != nil {
		return nil, nil, err
	}
	queue := s.queue
	if queue != "" {
		ch, err = s.c.declareGroup(ctx, ch, s.topic, s.o.Group, s.o.MaxAttempts)
		if err != nil {
			_ = ch.Close()
			return nil, nil, err
		}
	} else {
		if err := s.c.declareTopic(ctx, ch, s.topic); err != nil {
			_ = ch.Close()
			return nil, nil, err
		}
		q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-queue-type": "classic"})
		if err == nil {
			err = ch.QueueBind(q.Name, "#", s.topic, false, nil)
		}
		if err != nil {
			_ = ch.Close()
			return nil, nil, fmt.Errorf("declare ephemeral queue: %w", err)
		}
		queue = q.Name
	}
	if err := ch.Qos(s.o.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("consume %q: %w", queue, err)
	}
	return ch, deliveries, nil
}

// run feeds deliveries to the pool, re-establishing the consumer after a
// lost connection, until the subscription stops.
func (s *subscription) run(ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
	ctx := s.sub.FetchContext()
	err := s.loop(ctx, ch, deliveries)
	// Every handler has returned and settled once the pool is closed.
	s.pool.Close()
	if ch := s.current; ch != nil {
		// Send the waiting acks before closing the channel, which makes the
		// broker requeue what was prefetched but never handed to a handler
		// (and whatever is still unacknowledged).
		if err := s.acks.close(true); err != nil {
			s.c.cfg.logger.Debug("rabbitmq: final acknowledgements failed; the broker will redeliver", "topic", s.topic, "error", err)
		}
		_ = ch.Close()
	}
	s.sub.Finish(err)
}

func (s *subscription) loop(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery) error {
	for {
		s.current, s.acks = ch, newAcker(ch, s.o.Prefetch, s.c.cfg.ackDelay)
		err := s.consume(ctx, ch, deliveries)
		if err != nil || ctx.Err() != nil {
			return err
		}
		// The channel or connection was lost: start again on the current
		// connection, with backoff while the broker refuses.
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = s.c.cfg.reconnectMin, s.c.cfg.reconnectMax
		type started struct {
			ch *amqp.Channel
			d  <-chan amqp.Delivery
		}
		st, err := backoff.Retry(ctx, func() (started, error) {
			ch, d, err := s.start(ctx)
			if errors.Is(err, messaging.ErrClosed) || errors.Is(err, ErrConnectionLost) {
				return started{}, backoff.Permanent(err)
			}
			if err != nil {
				s.c.cfg.logger.Warn("rabbitmq: resuming subscription", "topic", s.topic, "group", s.o.Group, "error", err)
			}
			return started{ch, d}, err
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		s.c.cfg.logger.Info("rabbitmq: subscription resumed", "topic", s.topic, "group", s.o.Group)
		// The old channel is lost: its waiting acks are dropped (the broker
		// redelivers those messages) and never sent on the new one.
		_ = s.acks.close(false)
		_ = ch.Close()
		ch, deliveries = st.ch, st.d
	}
}

// consume hands deliveries to the pool until the subscription stops (nil),
// the channel is lost (nil, ctx not done) or the broker cancels the consumer
// (an error).
func (s *subscription) consume(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				if ch.IsClosed() {
					return nil
				}
				return fmt.Errorf("subscription to %s: %w", s.topic, ErrConsumerCancelled)
			}
			m := message(&d, s.topic)
			m.Group = s.o.Group
			if reason, bad := d.Headers[hdrUndecodable]; bad {
				// Rewritten by frameGuard: give it up at once (see settle).
				s.settle(dispatch.Delivery{Msg: m, Token: token{d: d, a: s.acks}}, dispatch.Result{Outcome: dispatch.Term, Err: fmt.Errorf("%w: %v", errUndecodable, reason)})
				continue
			}
			base, _ := headerInt(d.Headers, hdrAttempt)
			count, _ := headerInt(d.Headers, "x-delivery-count")
			m.Attempt = int(base+count) + 1
			if !s.pool.Submit(ctx, dispatch.Delivery{Msg: m, Token: token{d: d, a: s.acks}}) {
				_ = s.acks.settle(d.DeliveryTag, func() error { return d.Nack(false, true) })
				return nil
			}
		}
	}
}

// settle acknowledges, requeues, delays or dead-letters one delivery.
// Acknowledgements go through the channel's acker, which batches them (see
// acker); nacks are sent at once, one by one.
func (s *subscription) settle(dl dispatch.Delivery, r dispatch.Result) {
	t := dl.Token.(token)
	d := t.d
	nack := func(requeue bool) func() error {
		return func() error { return d.Nack(false, requeue) }
	}
	var err error
	switch r.Outcome {
	case dispatch.Ack:
		err = t.a.ack(d.DeliveryTag)
	case dispatch.Release:
		err = t.a.settle(d.DeliveryTag, nack(true))
	case dispatch.Nack:
		if r.Delay > 0 && s.queue == "" {
			// An exclusive queue cannot take a TTL detour: keep the message
			// unacknowledged until the delay has passed, then requeue it.
			time.AfterFunc(r.Delay, func() { _ = t.a.settle(d.DeliveryTag, nack(true)) })
			return
		}
		if r.Delay > 0 {
			if err = s.retryLater(dl.Msg, &d, r.Delay); err == nil {
				err = t.a.ack(d.DeliveryTag)
				break
			}
			s.c.cfg.logger.Warn("rabbitmq: delayed retry failed; requeueing now", "topic", s.topic, "group", s.o.Group, "id", dl.Msg.ID, "error", err)
		}
		err = t.a.settle(d.DeliveryTag, nack(true))
	case dispatch.Term:
		if s.c.cfg.deadLetter != "" && s.queue != "" {
			s.c.cfg.logger.Info("rabbitmq: dead-lettering message", "topic", s.topic, "group", s.o.Group, "id", dl.Msg.ID, "attempt", dl.Msg.Attempt, "error", r.Err)
			err = t.a.settle(d.DeliveryTag, nack(false))
		} else {
			s.c.cfg.logger.Warn("rabbitmq: message not redelivered", "topic", s.topic, "group", s.o.Group, "id", dl.Msg.ID, "attempt", dl.Msg.Attempt, "error", r.Err)
			err = t.a.ack(d.DeliveryTag)
		}
	}
	if err != nil {
		// The channel is gone: the broker redelivers the message.
		s.c.cfg.logger.Debug("rabbitmq: settling failed; the broker will redeliver", "topic", s.topic, "id", dl.Msg.ID, "outcome", r.Outcome, "error", err)
	}
}

// retryLater publishes a copy of d to the group's TTL queue for delay, which
// dead-letters it back into the group's queue when the delay has passed. The
// copy carries the attempts so far, so Attempt keeps counting.
func (s *subscription) retryLater(m *messaging.Message, d *amqp.Delivery, delay time.Duration) error {
	delay = (delay + retryDelayStep - 1) / retryDelayStep * retryDelayStep
	q := delayQueue(s.topic, s.o.Group, delay)
	ctx, cancel := dispatch.SettleContext(s.sub.HandlerContext(), settleTimeout)
	defer cancel()
	ch, _, err := s.c.conn.channel(ctx)
	if err != nil {
		return err
	}
	// Re-declared each time: it resets the queue's expiry, which must not
	// pass while messages wait in it.
	_, err = ch.QueueDeclare(q, true, false, false, false, amqp.Table{
		"x-queue-type":              "classic",
		"x-message-ttl":             delay.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": s.queue,
		"x-expires":                 (delay + time.Minute).Milliseconds(),
	})
	_ = ch.Close()
	if err != nil {
		return fmt.Errorf("declare retry queue %q: %w", q, err)
	}
	if err := s.c.register(ctx, s.topic, q); err != nil {
		return err
	}
	h := make(amqp.Table, len(d.Headers)+2)
	for k, v := range d.Headers {
		if !brokerHeaders[k] {
			h[k] = v
		}
	}
	h[hdrAttempt] = int64(m.Attempt)
	h[hdrKey] = m.Key
	pub := amqp.Publishing{
		Headers:      h,
		DeliveryMode: amqp.Persistent,
		MessageId:    d.MessageId,
		Timestamp:    d.Timestamp,
		Body:         d.Body,
	}
	errs := make([]error, 1)
	if err := s.c.send(ctx, "", []outgoing{{exchange: "", key: q, pub: pub}}, errs); err != nil {
		return err
	}
	return errs[0]
}
