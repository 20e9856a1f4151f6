package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/dlheader"
	"github.com/msgkit/messaging/driver"
)

// This file is the consumer side of the adapter: the driver the library's
// engine (package engine) runs. It holds the wire calls only (basic.consume
// with QoS, acknowledgements batched by the acker, the TTL-queue detour of
// delayed retries, stream consumers positioned with x-stream-offset); the
// subscription lifecycles, worker pool, backoff and reopening after a lost
// channel are the engine's.

// ErrConsumerCancelled ends a subscription or read whose queue the broker
// cancelled the consumer of, because the queue was deleted (DeleteTopic). It
// wraps messaging.ErrTopicDeleted, which callers should test for.
var ErrConsumerCancelled = fmt.Errorf("rabbitmq: consumer cancelled by the broker (queue deleted): %w", messaging.ErrTopicDeleted)

// retryDelayStep is the granularity of RetryAfter delays: each distinct delay,
// rounded up to it, gets its own TTL queue.
const retryDelayStep = 100 * time.Millisecond

// streamPrefetch is the credit a stream reader gives the broker.
const streamPrefetch = 256

// rabbitDriver opens the client's consumers for the engine.
type rabbitDriver struct{ c *Client }

var (
	_ driver.Driver               = rabbitDriver{}
	_ driver.LogReader            = rabbitDriver{}
	_ driver.ReceiverCapabilities = (*receiver)(nil)
)

func (d rabbitDriver) Capabilities() messaging.Capabilities { return d.c.Capabilities() }

// OpenReceiver declares the subscription's queue (the group's quorum queue,
// or an exclusive one without a group) and starts consuming it.
func (d rabbitDriver) OpenReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	if o.Group != "" && o.StartAt.Kind != messaging.PositionEarliest {
		return nil, fmt.Errorf("rabbitmq: %s: group %s starting at %v: %w (a group queue receives messages from its creation on)", topic, o.Group, o.StartAt, messaging.ErrUnsupported)
	}
	if o.Group == "" && o.StartAt.Kind != messaging.PositionLatest {
		return nil, fmt.Errorf("rabbitmq: %s: ephemeral subscription starting at %v: %w (use Read)", topic, o.StartAt, messaging.ErrUnsupported)
	}
	if err := checkPrefetch("Prefetch", o.Prefetch); err != nil {
		return nil, fmt.Errorf("%w (subscription to %s)", err, topic)
	}
	r := &receiver{c: d.c, topic: topic, o: o}
	if o.Group != "" {
		r.queue = groupQueue(topic, o.Group)
	}
	if err := r.start(ctx); err != nil {
		return nil, fmt.Errorf("rabbitmq: %s: %w", topic, err)
	}
	return r, nil
}

// receiver is one subscription's consumer. Its channel fields are used by
// Receive (and Close) only; Settle goes through each delivery's token.
type receiver struct {
	c     *Client
	topic string
	o     messaging.SubscribeOptions
	queue string // the group's queue; empty for an ephemeral subscription

	ch    *amqp.Channel // nil once lost, until Receive starts again
	gen   uint64        // the connection generation ch is on
	in    <-chan amqp.Delivery
	cons  *consumer   // ch's consumer
	acks  *acker      // ch's
	watch *blockWatch // the blocked state of ch's connection

	deleted bool // an ephemeral subscription got the topic-deleted message

	out []driver.Delivery // what Receive returned last, reused (see driver.Receiver)

	// settling is closed once the last Settle's batch is settled (nil
	// before the first): Settle and Close use it only.
	settling chan struct{}
}

// token settles one delivery on the channel it came on.
type token struct {
	d   amqp.Delivery
	a   *acker
	c   *consumer
	ch  closer      // the channel; nil in unit tests, taken as open
	gen uint64      // the connection generation of ch; 0: not checked
	w   *blockWatch // the state of ch's connection; nil in unit tests
}

// closer is the part of *amqp.Channel that tells whether it is closed.
type closer interface {
	IsClosed() bool
}

// errDeliveryGone: a delivery's channel was lost before it was settled;
// the broker has requeued the message (or given it to another consumer),
// so its token is stale.
var errDeliveryGone = errors.New("rabbitmq: the delivery's channel is gone; the broker requeued the message")

// gone reports whether the channel t's delivery came on is lost (closed,
// its acker dead, or its connection closed or replaced): the broker has
// requeued the message then, and a settlement of t must not act on it.
// The connection is checked too because amqp091 marks a connection
// closed, and tells its close listeners (the reconnect), before it marks
// the connection's channels closed.
func (t *token) gone(c *connector) bool {
	if t.a.gone() || (t.ch != nil && t.ch.IsClosed()) {
		return true
	}
	return t.gen != 0 && c.gone(t.gen)
}

// staleCheck returns the check send runs right before each attempt to
// publish a copy of t's message (a delayed retry, a dead letter), after
// any wait for a reconnect: errDeliveryGone once t's channel is gone, as
// the broker has requeued the message then.
func (t *token) staleCheck(c *connector) func(int) error {
	return func(int) error {
		if t.gone(c) {
			return errDeliveryGone
		}
		return nil
	}
}

// canceller is the part of *amqp.Channel that cancels a consumer.
type canceller interface {
	Cancel(consumer string, noWait bool) error
}

// consumer is a receiver's consumer on one channel.
type consumer struct {
	ch        canceller // the channel
	tag       string
	cancel    sync.Once
	cancelled atomic.Bool
}

// stop cancels the consumer (basic.cancel, without waiting for the reply)
// before the first release: a message returned with basic.nack while the
// consumer still has room in its prefetch window comes straight back to
// it, and closing the channel then returns it a second time, which
// RabbitMQ before 4.3 counts in x-delivery-count (two returns per
// release, each one more Attempt). The frames of a channel are processed
// in order, so the nacks that follow go to the other consumers. Releases
// happen only when the subscription stops, after its last Receive.
func (c *consumer) stop() {
	c.cancel.Do(func() {
		c.cancelled.Store(true)
		_ = c.ch.Cancel(c.tag, true)
	})
}

// Capabilities: an exclusive queue cannot take the TTL detour, and as a
// classic queue it sets no x-delivery-count, so Attempt would stay 1 and
// MaxAttempts never be reached (a failing message requeued again and again,
// thousands of times a second): the engine holds delayed retries of an
// ephemeral subscription and redelivers its failed messages itself,
// counting Attempt.
func (r *receiver) Capabilities() messaging.Capabilities {
	caps := r.c.Capabilities()
	if r.queue == "" {
		caps.NativeDelay, caps.NativeDeadLetter, caps.BrokerAttempts = false, false, false
	}
	return caps
}

// start opens a channel on the current connection, declares the queue and
// starts consuming. It returns when ctx ends, and fails with
// messaging.ErrUnavailable when no connection comes within the unavailable
// timeout or once the broker has blocked the connection (a resource
// alarm) for that long (see channelBounded; a consumer started meanwhile
// in the background is closed).
func (r *receiver) start(ctx context.Context) error {
	var ch *amqp.Channel
	var in <-chan amqp.Delivery
	var watch *blockWatch
	var gen uint64
	tag := "msgkit-" + driver.NewID()
	err := r.c.conn.channelBounded(ctx, time.Now(), r.topic, func(c *amqp.Channel, g uint64, w *blockWatch) error {
		var err error
		if c, in, err = r.consume(ctx, c, tag); err == nil {
			ch, watch, gen = c, w, g
		}
		return err
	}, func() { _ = ch.Close() })
	if err != nil {
		return err
	}
	r.ch, r.gen, r.in, r.acks, r.watch = ch, gen, in, newAcker(ch, r.o.Prefetch, r.c.cfg.ackDelay), watch
	r.cons = &consumer{ch: ch, tag: tag}
	return nil
}

// consume declares r's queue and starts consuming it on ch; on failure it
// closes the channel it ends with (declareGroup may replace ch).
func (r *receiver) consume(ctx context.Context, ch *amqp.Channel, tag string) (*amqp.Channel, <-chan amqp.Delivery, error) {
	var err error
	queue := r.queue
	if queue != "" {
		ch, err = r.c.declareGroup(ctx, ch, r.topic, r.o.Group, r.o.MaxAttempts)
	} else if err = r.c.declareTopic(ctx, ch, r.topic); err == nil {
		var q amqp.Queue
		if q, err = ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-queue-type": "classic"}); err == nil {
			err = ch.QueueBind(q.Name, "#", r.topic, false, nil)
		}
		if err != nil {
			err = fmt.Errorf("rabbitmq: declare ephemeral queue: %w", err)
		}
		queue = q.Name
	}
	if err == nil {
		if err = ch.Qos(r.o.Prefetch, 0, false); err != nil {
			err = fmt.Errorf("rabbitmq: qos: %w", err)
		}
	}
	var in <-chan amqp.Delivery
	if err == nil {
		if in, err = ch.Consume(queue, tag, false, false, false, false, nil); err != nil {
			err = fmt.Errorf("rabbitmq: consume %q: %w", queue, err)
		}
	}
	if err != nil {
		_ = ch.Close()
		return nil, nil, err
	}
	return ch, in, nil
}

// Receive returns the deliveries waiting (up to max), blocking for the
// first. After a lost channel it starts consuming again on the current
// connection; messages in flight on the lost channel are redelivered by the
// broker. The topic-deleted message (see Client.tellDeleted) is
// acknowledged and never returned: it ends an ephemeral subscription, with
// an error wrapping messaging.ErrTopicDeleted once the deliveries before it
// are returned (those after it never are), and a group's goes on.
func (r *receiver) Receive(ctx context.Context, max int) ([]driver.Delivery, error) {
	clear(r.out) // the engine has copied them
	out, err := r.receive(ctx, max, r.out[:0])
	if out != nil {
		r.out = out
	}
	return out, err
}

// receive is Receive, appending to out.
func (r *receiver) receive(ctx context.Context, max int, out []driver.Delivery) ([]driver.Delivery, error) {
	if r.deleted {
		return nil, r.deletedErr()
	}
	if r.ch == nil {
		if err := reopen(ctx, r.start); err != nil {
			return nil, err
		}
		r.c.cfg.logger.Info("rabbitmq: subscription resumed", "topic", r.topic, "group", r.o.Group)
	}
	for len(out) < max {
		var d amqp.Delivery
		var ok bool
		if len(out) == 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case d, ok = <-r.in:
			}
			if !ok {
				return nil, r.lost()
			}
		} else {
			select {
			case d, ok = <-r.in:
			default:
				return out, nil
			}
			if !ok {
				return out, nil // the next call reports it
			}
		}
		if _, ctl := d.Headers[hdrDeleted]; ctl {
			_ = r.acks.ack(d.DeliveryTag)
			if r.queue != "" {
				continue // its queue is deleted, or stays
			}
			r.deleted = true
			if len(out) > 0 {
				return out, nil // the next call reports it
			}
			return nil, r.deletedErr()
		}
		out = append(out, r.delivery(d))
	}
	return out, nil
}

// deletedErr ends an ephemeral subscription that got the topic-deleted
// message.
func (r *receiver) deletedErr() error {
	return fmt.Errorf("rabbitmq: subscription to %s: topic deleted: %w", r.topic, messaging.ErrTopicDeleted)
}

func (r *receiver) delivery(d amqp.Delivery) driver.Delivery {
	m := message(&d, r.topic)
	m.Group = r.o.Group
	base, _ := headerInt(d.Headers, hdrAttempt)
	count, _ := headerInt(d.Headers, "x-delivery-count")
	m.Attempt = int(base+count) + 1
	dl := driver.Delivery{Msg: m, Token: &token{d: d, a: r.acks, c: r.cons, ch: r.ch, gen: r.gen, w: r.watch}}
	if reason, bad := d.Headers[hdrUndecodable]; bad {
		// Rewritten by frameGuard: the engine gives it up (Term) unhandled.
		dl.Err = fmt.Errorf("%w: %v", errUndecodable, reason)
	}
	return dl
}

// lost handles the end of r's deliveries: a lost channel is transient (the
// waiting acks are dropped: their tags mean nothing on the next channel); a
// consumer the broker cancelled on an open channel means the queue was
// deleted.
func (r *receiver) lost() error {
	if r.cons.cancelled.Load() {
		return fmt.Errorf("rabbitmq: subscription to %s: consumer cancelled to release its messages: %w", r.topic, context.Canceled)
	}
	if !r.ch.IsClosed() {
		return fmt.Errorf("rabbitmq: subscription to %s: %w", r.topic, ErrConsumerCancelled)
	}
	_ = r.acks.close(false)
	r.ch = nil
	return driver.Transient(fmt.Errorf("rabbitmq: subscription to %s: channel lost: %w", r.topic, ErrConnectionLost))
}

// reopen runs start, telling the engine which failures to retry: every one
// but a closed client, a connection that cannot be redialled and ctx's end.
func reopen(ctx context.Context, start func(context.Context) error) error {
	err := start(ctx)
	if err == nil || errors.Is(err, messaging.ErrClosed) || errors.Is(err, ErrConnectionLost) || ctx.Err() != nil {
		return err
	}
	return driver.Transient(err)
}

// Settle acknowledges, requeues, delays or dead-letters each delivery, on
// the channel it came on. Acknowledgements go through the channel's acker,
// which batches them (see acker); a failure is requeued with basic.reject,
// a release with basic.nack, each sent at once. A
// failed send means the channel is gone and the broker redelivers what it
// had not settled at once, so Settle only logs it. A delayed retry of a
// delivery whose channel is gone is not taken (see detour).
//
// amqp091's basic.ack, nack, reject and cancel wait for the connection's
// send lock, which a Publish whose write the broker stopped reading holds
// (a broker that answers nothing and reads nothing, the socket buffers
// full) until the socket is closed. So the batch is settled on a goroutine
// of its own, after the batches before it (the order of the sends is
// kept), and Settle waits for it until ctx ends, or until the broker has
// answered nothing on the connection for the unavailable timeout since
// the call or since its last answer, whichever is later (a connection
// Open made; not counted while the broker blocks the connection, which
// has its own bound: see blockWatch): the connection is then closed, as
// for the other calls (see blockWatch.boundAnswers), which ends the stuck
// write. Settle then fails and the settlements go on in the background,
// ending with the connection at the latest; one that never reaches the
// broker means a redelivery (at-least-once). Close waits for them first.
func (r *receiver) Settle(ctx context.Context, batch []driver.Settlement) error {
	if len(batch) == 0 {
		return nil
	}
	begin := time.Now()
	batch = slices.Clone(batch) // the engine reuses its slice
	prev, done := r.settling, make(chan struct{})
	r.settling = done
	// The work outlives the call when Settle stops waiting (the caller
	// then cancels ctx): it keeps ctx's deadline, not its cancellation, so
	// that a delayed retry under way ends by its own bound (with
	// ErrUnavailable, the message requeued), not cut short as cancelled.
	work, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		work, cancel = context.WithDeadline(work, d)
	}
	go func() {
		defer close(done)
		defer cancel()
		if prev != nil {
			<-prev
		}
		r.settle(work, batch)
	}()
	// The last delivery's connection is the newest: those of earlier
	// connections are closed, and sends on them fail at once.
	w := batch[len(batch)-1].Token.(*token).w
	silent := w.silentFor(begin, r.c.cfg.unavailable)
	defer silent.stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("rabbitmq: settling %d messages of %s: %w (left to finish in the background)", len(batch), r.topic, ctx.Err())
		case <-silent.c():
			if !silent.expired() {
				continue // an answer moved the deadline
			}
			if w.isBlocked() {
				silent.again() // a block has its own bound
				continue
			}
			// The socket closed even when amqp091's shutdown has begun
			// (see blockWatch.giveUp). Not waited for: on a connection
			// given to New, a shutdown amqp091 began meanwhile holds the
			// lock CloseDeadline takes until that write ends.
			go w.giveUp()
			return fmt.Errorf("rabbitmq: settling %d messages of %s: %w", len(batch), r.topic, errSilentFor(r.c.cfg.unavailable))
		}
	}
}

// settle is Settle's work: it applies batch in order.
func (r *receiver) settle(ctx context.Context, batch []driver.Settlement) {
	for i := range batch {
		st := &batch[i]
		t := st.Token.(*token)
		tag := t.d.DeliveryTag
		var err error
		switch st.Outcome {
		case driver.Ack:
			err = t.a.ack(tag)
		case driver.Nack: // a group's: the engine redelivers an ephemeral subscription's
			if st.Delay > 0 {
				var done bool
				if done, err = r.detour(ctx, st.Msg, t, st.Delay, "rabbitmq: delayed retry failed; requeueing now"); done {
					break
				}
			}
			// A failure: basic.reject, which RabbitMQ 4.3 and later count
			// toward x-delivery-limit (basic.nack they do not).
			err = t.a.settle(tag, func() error { return t.d.Reject(true) })
		case driver.Release:
			err = r.release(t)
		case driver.Term:
			switch {
			case r.c.cfg.deadLetter == "" || r.queue == "":
				err = t.a.ack(tag)
			case r.undead():
				err = r.deadLetter(ctx, st, t)
			default: // the queue dead-letters it into the exchange
				err = t.a.settle(tag, func() error { return t.d.Nack(false, false) })
			}
		}
		if err != nil {
			r.c.cfg.logger.Debug("rabbitmq: settling failed; the broker will redeliver", "topic", r.topic, "id", st.Msg.ID, "outcome", st.Outcome, "error", err)
		}
	}
}

// undead reports whether r's group queue may not dead-letter into the
// client's dead-letter exchange: it existed with other arguments (see
// Client.declareGroup).
func (r *receiver) undead() bool {
	_, ok := r.c.undead.Load(r.queue)
	return ok
}

// deadLetter gives up the message of st on a group queue that may not
// dead-letter into the client's exchange (basic.nack without requeue could
// make the broker drop it): it publishes a copy to that exchange itself,
// with confirm, carrying the headers of package dlheader (the reason is
// st.Err) instead of the broker's x-death (the headers a message the
// client cannot decode lost stay lost), and then acknowledges the
// message. A copy no queue receives (none is bound to the exchange) is
// dropped with a warning, as the broker drops such a dead letter. When the
// copy cannot be sent, the message is requeued (basic.nack) with a
// warning: it comes back and is given up again (at-least-once). When t's
// channel is gone before the copy is sent, t is stale (the broker has
// requeued the message) and no copy is sent.
func (r *receiver) deadLetter(ctx context.Context, st *driver.Settlement, t *token) error {
	if t.gone(r.c.conn) {
		return errDeliveryGone
	}
	d, m := &t.d, st.Msg
	h := make(amqp.Table, len(d.Headers)+7)
	for k, v := range d.Headers {
		// The guard's mark would have a consumer of the copy give it up
		// again; the reason is in the envelope.
		if !brokerHeaders[k] && k != hdrUndecodable && !strings.HasPrefix(k, dlheader.HeaderPrefix) {
			h[k] = v
		}
	}
	env := messaging.Header{}
	dlheader.Set(env, dlheader.FailureOf(m, st.Err, time.Now()))
	for k, v := range env {
		h[k] = v
	}
	pub := amqp.Publishing{Headers: h, DeliveryMode: amqp.Persistent, MessageId: d.MessageId, Timestamp: d.Timestamp, Body: d.Body}
	errs := make([]error, 1)
	err := r.c.send(ctx, time.Now(), "", []outgoing{{exchange: r.c.cfg.deadLetter, key: m.Key, pub: pub}}, errs, t.staleCheck(r.c.conn), nil)
	if err == nil {
		err = errs[0]
	}
	switch {
	case err == nil:
	case errors.Is(err, errDeliveryGone):
		return err
	case errors.Is(err, ErrUnroutable):
		r.c.cfg.logger.Warn("rabbitmq: message given up and dropped: no queue is bound to the dead-letter exchange",
			"topic", r.topic, "group", r.o.Group, "id", m.ID, "exchange", r.c.cfg.deadLetter, "error", st.Err)
	default:
		r.c.cfg.logger.Warn("rabbitmq: dead-lettering a given-up message failed; requeueing it",
			"topic", r.topic, "group", r.o.Group, "id", m.ID, "exchange", r.c.cfg.deadLetter, "error", err)
		return t.a.settle(d.DeliveryTag, func() error { return d.Nack(false, true) })
	}
	return t.a.ack(d.DeliveryTag)
}

// release returns the message of t to its queue with basic.nack, which
// from RabbitMQ 4.3 does not count toward x-delivery-limit (earlier versions count it;
// the client declares no limit there: see countsOnlyFailures), after
// cancelling the consumer (see consumer.stop).
func (r *receiver) release(t *token) error {
	t.c.stop()
	return t.a.settle(t.d.DeliveryTag, func() error { return t.d.Nack(false, true) })
}

// detour sends the message of t through the retry queue for delay (see
// retryLater) and acknowledges it, reporting done and the acknowledgement's
// error. When the copy cannot be sent it logs failed with why and reports
// not done: the caller requeues the message instead. When t's channel is
// gone, before the copy is sent, t is stale: the broker has requeued the
// message, which is its redelivery (without the delay); detour sends no
// copy (it would be a second one) and reports done with errDeliveryGone.
// A channel lost after the copy is sent and before the ack leaves both
// (at-least-once).
func (r *receiver) detour(ctx context.Context, m *messaging.Message, t *token, delay time.Duration, failed string) (done bool, _ error) {
	if t.gone(r.c.conn) {
		return true, errDeliveryGone
	}
	if err := r.retryLater(ctx, m, t, delay); err != nil {
		if errors.Is(err, errDeliveryGone) {
			return true, err
		}
		r.c.cfg.logger.Warn(failed, "topic", r.topic, "group", r.o.Group, "id", m.ID, "error", err)
		return false, nil
	}
	return true, t.a.ack(t.d.DeliveryTag)
}

// Close waits for the settlements Settle left to finish in the
// background, sends the waiting acks, then closes the channel, which makes
// the broker requeue what it delivered that the engine never fetched. It
// waits for those settlements and the broker's close-ok until ctx ends
// (the engine's settle timeout)
// or the broker has blocked the connection (a resource alarm: it reads
// nothing, acks and channel.close included) for the unavailable timeout,
// at once if the block has lasted that long already; then the close goes
// on in the background, and the broker requeues the unacknowledged
// messages when it reads it (the alarm clears) or when the connection
// closes. A broker that has answered nothing for the unavailable timeout
// since the close began or since its last answer ends the wait too, the
// connection closed (see blockWatch.boundAnswers).
func (r *receiver) Close(ctx context.Context) error {
	if r.ch == nil {
		return nil
	}
	ch, acks, settling := r.ch, r.acks, r.settling
	return runBoundedAnswers(ctx, r.watch, r.c.cfg.unavailable, func() error {
		if settling != nil {
			<-settling
		}
		err := acks.close(true)
		_ = ch.Close()
		if err != nil && !ch.IsClosed() {
			return err
		}
		return nil
	})
}

// retryLater publishes a copy of t's delivery to the group's TTL queue for
// delay, which dead-letters it back into the group's queue when the delay
// has passed. The copy carries the attempts so far, so Attempt keeps
// counting. The caller
// requeues the message instead when it fails: with an error wrapping
// messaging.ErrUnavailable when no connection comes within the unavailable
// timeout of the connection's loss (at once when it was lost longer ago),
// or once the broker has blocked the connection (a resource alarm: it
// answers no declaration) for that long, at once if the block has lasted
// that long already (as receiver.Close; see channelBounded, the
// declaration then going on in the background); the copy's publish is
// bounded as Publish is. It fails with errDeliveryGone, sending no copy
// (or not again: see send), when t's channel is found gone before the
// declaration or an attempt to publish, checked after any wait for a
// reconnect.
func (r *receiver) retryLater(ctx context.Context, m *messaging.Message, t *token, delay time.Duration) error {
	d := &t.d
	delay = (delay + retryDelayStep - 1) / retryDelayStep * retryDelayStep
	q := delayQueue(r.topic, r.o.Group, delay)
	// Counted from the loss and the block, not from now: the delivery came
	// on a connection, and Settle runs the retries of a batch one by one.
	err := r.c.conn.channelBounded(ctx, time.Time{}, r.topic, func(ch *amqp.Channel, _ uint64, _ *blockWatch) error {
		if t.gone(r.c.conn) { // lost while waiting for a connection
			_ = ch.Close()
			return errDeliveryGone
		}
		// Re-declared each time: it resets the queue's expiry, which must
		// not pass while messages wait in it.
		_, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
			"x-queue-type":              "classic",
			"x-message-ttl":             delay.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": r.queue,
			"x-expires":                 (delay + time.Minute).Milliseconds(),
		})
		_ = ch.Close()
		if err != nil {
			return err
		}
		return r.c.register(ctx, r.topic, q)
	}, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: declare retry queue %q: %w", q, err)
	}
	h := make(amqp.Table, len(d.Headers)+2)
	for k, v := range d.Headers {
		if !brokerHeaders[k] {
			h[k] = v
		}
	}
	h[hdrAttempt] = int64(m.Attempt)
	h[hdrKey] = m.Key
	pub := amqp.Publishing{Headers: h, DeliveryMode: amqp.Persistent, MessageId: d.MessageId, Timestamp: d.Timestamp, Body: d.Body}
	errs := make([]error, 1)
	if err := r.c.send(ctx, time.Now(), "", []outgoing{{exchange: "", key: q, pub: pub}}, errs, t.staleCheck(r.c.conn), nil); err != nil {
		return err
	}
	return errs[0]
}

// OpenLog starts a consumer of topic's stream queue at from. It needs a
// client built WithStreams.
func (d rabbitDriver) OpenLog(ctx context.Context, topic string, from messaging.Position) (driver.Log, error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	if !d.c.cfg.streams {
		return nil, fmt.Errorf("rabbitmq: %s: %w (build the client WithStreams(true) or streams=true)", topic, messaging.ErrUnsupported)
	}
	openedAt := time.Now()
	offset, err := streamOffset(from)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %s: %w", topic, err)
	}
	l := &logReader{c: d.c, topic: topic, offset: offset}
	switch from.Kind {
	case messaging.PositionAtTime:
		l.notBefore = from.Time
	case messaging.PositionLatest:
		// AMQP cannot tell the stream's end offset: a reopen before the
		// first message starts at the time Read was opened, as AtTime.
		l.offset, _ = streamOffset(messaging.AtTime(openedAt))
		l.openedAt = openedAt
	}
	if err := l.start(ctx, offset); err != nil {
		return nil, fmt.Errorf("rabbitmq: %s: %w", topic, err)
	}
	return l, nil
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

// logReader consumes a topic's stream queue for Stream.Read.
type logReader struct {
	c         *Client
	topic     string
	offset    any       // where a reopen before the first message starts
	openedAt  time.Time // Latest: when Read was opened, the notBefore of such a reopen
	notBefore time.Time
	next      int64 // offset after the last message returned
	started   bool  // next is valid
	ch        *amqp.Channel
	in        <-chan amqp.Delivery
	watch     *blockWatch // the blocked state of ch's connection
}

// start consumes the stream from offset on a channel of the current
// connection, bounded as receiver.start is.
func (l *logReader) start(ctx context.Context, offset any) error {
	var ch *amqp.Channel
	var in <-chan amqp.Delivery
	var watch *blockWatch
	err := l.c.conn.channelBounded(ctx, time.Now(), l.topic, func(c *amqp.Channel, _ uint64, w *blockWatch) error {
		var err error
		if in, err = l.consume(ctx, c, offset); err == nil {
			ch, watch = c, w
		}
		return err
	}, func() { _ = ch.Close() })
	if err != nil {
		return err
	}
	l.ch, l.in, l.watch = ch, in, watch
	return nil
}

// consume declares l's topic and consumes its stream from offset on ch,
// which it closes on failure.
func (l *logReader) consume(ctx context.Context, ch *amqp.Channel, offset any) (<-chan amqp.Delivery, error) {
	var in <-chan amqp.Delivery
	err := l.c.declareTopic(ctx, ch, l.topic)
	if err == nil {
		if err = ch.Qos(streamPrefetch, 0, false); err != nil {
			err = fmt.Errorf("rabbitmq: qos: %w", err)
		}
	}
	if err == nil {
		if in, err = ch.Consume(streamQueue(l.topic), "", false, false, false, false, amqp.Table{"x-stream-offset": offset}); err != nil {
			err = fmt.Errorf("rabbitmq: consume stream: %w", err)
		}
	}
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return in, nil
}

// Next returns the messages waiting, blocking for the first. The engine
// calls it again only once it has handled the previous ones, so after a lost
// channel the read resumes right after them; before the first message, at
// the position Read was opened with (for Latest, the time it was opened:
// see OpenLog).
func (l *logReader) Next(ctx context.Context) ([]*messaging.Message, error) {
	if l.ch == nil {
		offset := l.offset
		if l.started {
			offset = l.next
		} else if !l.openedAt.IsZero() {
			l.notBefore = l.openedAt
		}
		if err := reopen(ctx, func(ctx context.Context) error { return l.start(ctx, offset) }); err != nil {
			return nil, err
		}
	}
	var out []*messaging.Message
	var last *amqp.Delivery // stream acks only return credit to the broker
	defer func() {
		if last != nil {
			_ = last.Ack(true)
		}
	}()
	for len(out) < streamPrefetch {
		var d amqp.Delivery
		ok := true
		if len(out) == 0 {
			if last != nil { // skipped deliveries: give their credit back before blocking
				_ = last.Ack(true)
				last = nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case d, ok = <-l.in:
			}
		} else {
			select {
			case d, ok = <-l.in:
			default:
				return out, nil
			}
		}
		if !ok {
			if len(out) > 0 {
				return out, nil // the next call reports it
			}
			if !l.ch.IsClosed() {
				return nil, fmt.Errorf("rabbitmq: read %s: %w", l.topic, ErrConsumerCancelled)
			}
			l.ch = nil
			return nil, driver.Transient(fmt.Errorf("rabbitmq: read %s: channel lost: %w", l.topic, ErrConnectionLost))
		}
		last = &d
		if _, ctl := d.Headers[hdrDeleted]; ctl {
			// Kept by a stream whose deletion was cut short, or declared
			// after DeleteTopic read the registry: not a message (the
			// stream's deletion ends the read).
			continue
		}
		off, hasOff := headerInt(d.Headers, hdrStreamOffset)
		reason, bad := d.Headers[hdrUndecodable]
		if !hasOff && !bad {
			return nil, fmt.Errorf("rabbitmq: read %s: delivery without x-stream-offset", l.topic)
		}
		m := message(&d, l.topic)
		if (hasOff && l.started && off < l.next) || (!l.notBefore.IsZero() && m.Time.Before(l.notBefore)) {
			continue // read before a reconnect, or before the requested time
		}
		l.notBefore = time.Time{} // log order from here on
		if bad {
			// Rewritten by frameGuard: given up with a log line, as a
			// subscription does, and the read goes on after it (its
			// offset is lost only when the guard could not find it).
			var at any = "unknown"
			if hasOff {
				at, l.next, l.started = off, off+1, true
			}
			l.c.cfg.logger.Warn("rabbitmq: read skipped a message it cannot decode", "topic", l.topic, "offset", at, "id", m.ID,
				"error", fmt.Errorf("%w: %v", errUndecodable, reason))
			continue
		}
		m.Offset = strconv.FormatInt(off, 10)
		l.next, l.started = off+1, true
		out = append(out, m)
	}
	return out, nil
}

// Close closes the channel, waiting for the broker's close-ok at most
// until the broker has blocked the connection, or answered nothing, for
// the unavailable timeout (see receiver.Close).
func (l *logReader) Close() error {
	if l.ch == nil {
		return nil
	}
	ch := l.ch
	return runBoundedAnswers(context.Background(), l.watch, l.c.cfg.unavailable, ch.Close)
}
