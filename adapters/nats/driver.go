package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// This file is the consumer side of the adapter: the driver the library's
// engine (package engine) runs. It holds the broker-specific parts only:
// pull consumers fed by Consume, their settlement (Ack, Nak, NakWithDelay,
// Term, InProgress), ordered consumers for Read, core subscriptions, and
// the sorting of what goes wrong (a deleted stream, a closed connection, or
// something transient to retry). The lifecycles, worker pool, prefetch,
// settle batching, in-progress scheduling, backoff and logging of given-up
// messages are the engine's.

// natsDriver opens the client's receivers. serve marks the driver of
// Client.Serve, whose core subscriptions record each request's reply
// subject.
type natsDriver struct {
	c     *Client
	serve bool
}

var (
	_ driver.Driver    = natsDriver{}
	_ driver.LogReader = natsDriver{}
	_ driver.Extender  = (*jsReceiver)(nil)
)

// Capabilities tells the engine what the server does itself; it differs
// from Client.Capabilities in BrokerAttempts. A JetStream consumer always
// redelivers a nak'ed message itself (the client claims BrokerAttempts only
// on servers whose delivery count is reliable, 2.10 and later). Core NATS
// cannot redeliver, and the adapter does not retry in-process either (a
// failed handler's message is dropped, see the package documentation): it
// reports BrokerAttempts and NativeDelay so that the engine hands every
// nack to Settle, which logs and drops it.
func (d natsDriver) Capabilities() messaging.Capabilities {
	caps := d.c.Capabilities()
	caps.BrokerAttempts, caps.NativeDelay = true, true
	return caps
}

// OpenReceiver starts a subscription: a core (queue) subscription, or a
// JetStream pull consumer (the group's durable one, or an ephemeral one)
// consumed with Consume.
func (d natsDriver) OpenReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	if d.serve || d.c.cfg.mode == ModeCore {
		r, err := d.c.openCore(ctx, topic, o, d.serve)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	r := &jsReceiver{
		c: d.c, topic: topic, o: o, schedule: backoffSchedule(o),
		termReason: versionAtLeast(d.c.nc.ConnectedServerVersion(), 2, 10, 4),
	}
	err := d.c.withStream(ctx, topic, func(stream string) error {
		r.stream = stream
		return r.start(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", topic, err)
	}
	return r, nil
}

// jsReceiver is one subscription's pull consumer. Consume's callback hands
// messages to Receive through in; Settle and Extend use each delivery's
// token (the jetstream.Msg) only.
type jsReceiver struct {
	c          *Client
	topic      string
	stream     string
	o          messaging.SubscribeOptions
	schedule   []time.Duration // the consumer's BackOff
	termReason bool            // the server keeps a Term's reason

	// Used by Receive and Close only.
	cons      jetstream.Consumer // nil once lost, until Receive starts again
	cc        jetstream.ConsumeContext
	in        chan jetstream.Msg
	stop      chan struct{}         // closed when this consume ends: the callback naks instead of waiting
	lastErr   atomic.Pointer[error] // the last error Consume reported
	ephemeral string                // the ephemeral consumer's name, deleted by Close
	lastSeq   uint64                // stream sequence of the last message received
}

// start finds or creates the consumer and starts consuming it. An
// ephemeral consumer recreated after a loss resumes after the last message
// received.
func (r *jsReceiver) start(ctx context.Context) error {
	c, o := r.c, r.o
	var err error
	if o.Group != "" {
		r.cons, err = c.group(ctx, r.stream, r.topic, o.Group, o.StartAt, &o)
	} else {
		cfg := jetstream.ConsumerConfig{
			Description:       "messaging ephemeral subscription of topic " + r.topic,
			FilterSubject:     r.topic,
			AckPolicy:         jetstream.AckExplicitPolicy,
			AckWait:           o.AckDeadline,
			MaxDeliver:        -1,
			MaxAckPending:     c.cfg.maxAckPending,
			InactiveThreshold: ephemeralInactive,
		}
		if o.MaxAttempts > 0 {
			cfg.MaxDeliver = o.MaxAttempts
		}
		setBackoff(&cfg, o)
		start := o.StartAt
		if r.lastSeq > 0 {
			start = messaging.AfterOffset(strconv.FormatUint(r.lastSeq, 10))
		}
		if err = deliverPolicy(start, &cfg); err != nil {
			return err
		}
		if r.ephemeral != "" { // lost: the old one expires anyway
			_ = c.js.DeleteConsumer(ctx, r.stream, r.ephemeral)
		}
		if r.cons, err = c.js.CreateConsumer(ctx, r.stream, cfg); err != nil {
			return fmt.Errorf("create ephemeral consumer on stream %s: %w", r.stream, err)
		}
		r.ephemeral = r.cons.CachedInfo().Name
	}
	if err != nil {
		return err
	}
	in, stop := make(chan jetstream.Msg, o.Prefetch), make(chan struct{})
	r.lastErr.Store(nil)
	cc, err := r.cons.Consume(func(jm jetstream.Msg) {
		select {
		case in <- jm:
		case <-stop:
			_ = jm.Nak() // the subscription ended: back to the group at once
		}
	}, jetstream.PullMaxMessages(o.Prefetch), jetstream.ConsumeErrHandler(func(cc jetstream.ConsumeContext, err error) {
		r.lastErr.Store(&err)
		if errors.Is(err, natsgo.ErrNoResponders) {
			cc.Stop() // the consumer is gone (a restarted server without it): Receive sorts it out
		}
	}))
	if err != nil {
		r.cons = nil
		return fmt.Errorf("consume %s: %w", r.topic, err)
	}
	r.cc, r.in, r.stop = cc, in, stop
	return nil
}

// Receive returns the messages waiting (up to max), blocking for the
// first. After the consumer was lost it finds or creates it again.
func (r *jsReceiver) Receive(ctx context.Context, max int) ([]driver.Delivery, error) {
	if r.cons == nil {
		if err := r.start(ctx); err != nil {
			return nil, r.c.lost(ctx, r.stream, err)
		}
		r.c.cfg.logger.Info("nats: subscription resumed", "topic", r.topic, "group", r.o.Group)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case jm := <-r.in:
		return takeWaiting(jm, r.in, max, r.delivery), nil
	case <-r.cc.Closed():
		err := errors.New("consume stopped")
		if last := r.lastErr.Load(); last != nil {
			err = *last
		}
		r.shut(ctx)
		r.cons = nil
		return nil, r.c.lost(ctx, r.stream, fmt.Errorf("consume %s: %w", r.topic, err))
	}
}

// takeWaiting returns first and what else waits in in, up to max in all,
// as deliveries.
func takeWaiting[T any](first T, in <-chan T, max int, delivery func(T) driver.Delivery) []driver.Delivery {
	out := []driver.Delivery{delivery(first)}
	for len(out) < max {
		select {
		case v := <-in:
			out = append(out, delivery(v))
		default:
			return out
		}
	}
	return out
}

func (r *jsReceiver) delivery(jm jetstream.Msg) driver.Delivery {
	m := toMessage(jm, r.topic, r.o.Group)
	if md, err := jm.Metadata(); err == nil {
		r.lastSeq = md.Sequence.Stream
	}
	return driver.Delivery{Msg: m, Token: jm, ExtendEvery: ackWait(r.schedule, r.o.AckDeadline, m.Attempt) / 3}
}

// lost sorts the failure of a consumer, a fetch or a log reader: a closed
// connection ends the subscription (ErrClosed), and so does the topic's
// stream gone (ErrTopicDeleted); anything else (a disconnect, a leader
// election, a consumer deleted from a stream that still exists) is
// transient: the next Receive creates the consumer again.
func (c *Client) lost(ctx context.Context, stream string, err error) error {
	if c.nc.IsClosed() {
		return c.wrapConnErr(fmt.Errorf("%w: %w", natsgo.ErrConnectionClosed, err))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w: %w", stream, messaging.ErrTopicDeleted, err)
	}
	if errors.Is(err, messaging.ErrInvalidTopic) || errors.Is(err, messaging.ErrInvalidOption) {
		return err
	}
	if _, serr := c.js.Stream(ctx, stream); errors.Is(serr, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s deleted: %w: %w", stream, messaging.ErrTopicDeleted, err)
	}
	return driver.Transient(err)
}

// Settle acks, naks (with the RetryAfter delay, else the BackOff entry of
// the attempt), terminates, or releases (a nak without delay, so another
// member gets the message at once) each delivery. The calls are
// asynchronous; a failure means the connection is gone and the server
// redelivers after the ack wait.
func (r *jsReceiver) Settle(_ context.Context, batch []driver.Settlement) error {
	var first error
	failed := 0
	for i := range batch {
		st := &batch[i]
		jm := st.Token.(jetstream.Msg)
		var err error
		switch st.Outcome {
		case driver.Ack:
			err = jm.Ack()
		case driver.Term:
			if r.termReason {
				reason := st.Err.Error()
				if len(reason) > 200 {
					reason = reason[:200]
				}
				err = jm.TermWithReason(reason)
			} else {
				err = jm.Term() // servers before 2.10.4 ignore a reason'd term
			}
		case driver.Nack:
			if delay := r.nakDelay(st.Delay, st.Msg.Attempt); delay > 0 {
				err = jm.NakWithDelay(delay)
			} else {
				err = jm.Nak()
			}
		case driver.Release:
			err = jm.Nak()
		}
		if err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("%s of message %s: %w", st.Outcome, st.Msg.ID, err)
			}
		}
	}
	if first != nil {
		return fmt.Errorf("%d of %d settlements failed; first: %w", failed, len(batch), first)
	}
	return nil
}

// nakDelay is the delay to nak the attempt-th delivery with. Without a
// BackOff it is the handler's RetryAfter (0: at once). With one, a plain
// nak would be redelivered at once whatever the BackOff, so the attempt's
// entry is the default; and the server redelivers a message nak'ed with
// delay d once it is d-AckWait old, measuring age against the attempt's
// entry (AckWait is the first): the difference is subtracted. A shorter
// RetryAfter is rounded up to it, as a nak cannot carry a negative delay.
func (r *jsReceiver) nakDelay(delay time.Duration, attempt int) time.Duration {
	if len(r.schedule) == 0 {
		return delay
	}
	wait := ackWait(r.schedule, 0, attempt)
	if delay <= 0 {
		delay = wait
	}
	return max(delay-(wait-r.schedule[0]), time.Nanosecond)
}

// Extend tells the server the deliveries are in progress, resetting their
// ack wait.
func (r *jsReceiver) Extend(_ context.Context, ds []driver.Delivery) error {
	var first error
	for _, d := range ds {
		if err := d.Token.(jetstream.Msg).InProgress(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// shut stops consuming: Consume's buffer is drained into in, and every
// message there is nak'ed back to the group at once (waiting for the drain
// at most until ctx ends; what is still in flight then comes back after the
// ack wait).
func (r *jsReceiver) shut(ctx context.Context) {
	close(r.stop)
	r.cc.Drain()
	for {
		select {
		case jm := <-r.in:
			_ = jm.Nak()
			continue
		case <-r.cc.Closed():
		case <-ctx.Done():
		}
		break
	}
	for {
		select {
		case jm := <-r.in:
			_ = jm.Nak()
		default:
			return
		}
	}
}

// Close stops consuming, naks what was received and not handed to the
// engine, and deletes an ephemeral consumer.
func (r *jsReceiver) Close(ctx context.Context) error {
	if r.cons != nil {
		r.shut(ctx)
	}
	if r.ephemeral != "" && !r.c.nc.IsClosed() {
		if err := r.c.js.DeleteConsumer(ctx, r.stream, r.ephemeral); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete ephemeral consumer %s: %w", r.ephemeral, err)
		}
	}
	return nil
}

// toMessage builds the delivered message of a JetStream message.
func toMessage(jm jetstream.Msg, topic, group string) *messaging.Message {
	m := &messaging.Message{Topic: topic, Group: group, Attempt: 1}
	decode(jm.Headers(), jm.Data(), m)
	if md, err := jm.Metadata(); err == nil {
		m.Attempt = int(max(md.NumDelivered, 1))
		m.Offset = strconv.FormatUint(md.Sequence.Stream, 10)
		if m.Time.IsZero() {
			m.Time = md.Timestamp
		}
		if m.ID == "" {
			// Published without an ID (by code not using this library):
			// the stream position identifies it.
			m.ID = md.Stream + ":" + m.Offset
		}
	}
	return m
}

// OpenLog starts an ordered consumer (no acknowledgements, no effect on
// groups) of topic's stream at from. Core NATS keeps no log.
func (d natsDriver) OpenLog(ctx context.Context, topic string, from messaging.Position) (driver.Log, error) {
	if d.serve || d.c.cfg.mode == ModeCore {
		return nil, fmt.Errorf("core NATS keeps no log: %w", messaging.ErrUnsupported)
	}
	l := &logReader{c: d.c, topic: topic}
	if err := deliverPolicy(from, &l.cfg); err != nil {
		return nil, err
	}
	err := d.c.withStream(ctx, topic, func(stream string) error {
		l.stream = stream
		if from.Kind == messaging.PositionLatest {
			// Position at the current end explicitly, so everything stored
			// after Read returns is delivered even if the consumer is
			// recreated (reconnect) before its first message.
			s, err := d.c.js.Stream(ctx, stream)
			if err != nil {
				return err
			}
			l.next = s.CachedInfo().State.LastSeq + 1
		}
		return l.start(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("%s from %v: %w", topic, from, err)
	}
	return l, nil
}

// logReader reads a topic's stream with an ordered consumer. The consumer
// recreates itself after a reconnect; any other failure stops it, and the
// next call to Next starts a new one after the last message read.
type logReader struct {
	c      *Client
	topic  string
	stream string
	cfg    jetstream.ConsumerConfig // the starting position
	next   uint64                   // stream sequence to resume at; 0: cfg's position
	cons   jetstream.Consumer
	it     jetstream.MessagesContext // nil once lost
}

func (l *logReader) start(ctx context.Context) error {
	ocfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{l.topic},
		DeliverPolicy:  l.cfg.DeliverPolicy,
		OptStartSeq:    l.cfg.OptStartSeq,
		OptStartTime:   l.cfg.OptStartTime,
		// One attempt to recreate the consumer inside Next: a failure
		// comes back to Next, which sorts it (a deleted stream ends the
		// read; the engine backs off before anything else is retried).
		MaxResetAttempts: 1,
	}
	if l.next > 0 {
		ocfg.DeliverPolicy, ocfg.OptStartSeq, ocfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, l.next, nil
	}
	cons, err := l.c.js.OrderedConsumer(ctx, l.stream, ocfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	l.cons, l.it = cons, it
	return nil
}

// Next returns the next message of the stream, blocking until there is one.
func (l *logReader) Next(ctx context.Context) ([]*messaging.Message, error) {
	if l.it == nil {
		if err := l.start(ctx); err != nil {
			return nil, l.c.lost(ctx, l.stream, fmt.Errorf("read %s: %w", l.topic, err))
		}
	}
	jm, err := l.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		l.stop()
		return nil, l.c.lost(ctx, l.stream, fmt.Errorf("read %s: %w", l.topic, err))
	}
	m := toMessage(jm, l.topic, "")
	if md, err := jm.Metadata(); err == nil {
		l.next = md.Sequence.Stream + 1
	}
	return []*messaging.Message{m}, nil
}

// stop stops the iterator and deletes the ordered consumer (the server
// would remove it after 5 minutes of inactivity).
func (l *logReader) stop() {
	l.it.Stop()
	l.it = nil
	if info := l.cons.CachedInfo(); info != nil && !l.c.nc.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.c.js.DeleteConsumer(ctx, l.stream, info.Name)
		cancel()
	}
}

func (l *logReader) Close() error {
	if l.it != nil {
		l.stop()
	}
	return nil
}

// coreReceiver is a core NATS (queue) subscription; its callback hands
// messages to Receive through in.
type coreReceiver struct {
	c       *Client
	topic   string
	o       messaging.SubscribeOptions
	serve   bool // record each request's reply subject in c.replyTo
	ns      *natsgo.Subscription
	in      chan *natsgo.Msg
	stop    chan struct{} // closed by Close: the callback drops instead of waiting
	nsEnded chan struct{} // closed when the subscription ends (connection closed)
}

// openCore subscribes to the plain subject topic (a queue group when o
// names a Group) and returns once the server has registered the interest.
func (c *Client) openCore(ctx context.Context, topic string, o messaging.SubscribeOptions, serve bool) (*coreReceiver, error) {
	r := &coreReceiver{c: c, topic: topic, o: o, serve: serve,
		in: make(chan *natsgo.Msg, o.Prefetch), stop: make(chan struct{}), nsEnded: make(chan struct{})}
	cb := func(m *natsgo.Msg) {
		select {
		case r.in <- m:
		case <-r.stop:
		}
	}
	var err error
	if o.Group != "" {
		r.ns, err = c.nc.QueueSubscribe(topic, o.Group, cb)
	} else {
		r.ns, err = c.nc.Subscribe(topic, cb)
	}
	if err == nil {
		err = c.flush(ctx)
	}
	if err != nil {
		if r.ns != nil {
			_ = r.ns.Unsubscribe()
		}
		return nil, fmt.Errorf("%s: %w", topic, c.wrapConnErr(err))
	}
	var once sync.Once
	r.ns.SetClosedHandler(func(string) { once.Do(func() { close(r.nsEnded) }) })
	return r, nil
}

// Receive returns the messages waiting (up to max), blocking for the
// first. The subscription ends when the connection is closed.
func (r *coreReceiver) Receive(ctx context.Context, max int) ([]driver.Delivery, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case m := <-r.in:
		return takeWaiting(m, r.in, max, r.delivery), nil
	case <-r.nsEnded:
		if !r.c.nc.IsClosed() {
			return nil, fmt.Errorf("subscription to %s ended", r.topic)
		}
		return nil, fmt.Errorf("subscription to %s: %w: %w", r.topic, messaging.ErrClosed, natsgo.ErrConnectionClosed)
	}
}

func (r *coreReceiver) delivery(nm *natsgo.Msg) driver.Delivery {
	m := &messaging.Message{Topic: r.topic, Group: r.o.Group, Attempt: 1}
	decode(nm.Header, nm.Data, m)
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	if r.serve {
		r.c.replyTo.Store(m, nm.Reply)
	}
	return driver.Delivery{Msg: m}
}

// Settle: core NATS cannot redeliver; a failed handler's message is logged
// and dropped (a Term was logged by the engine), a released one dropped.
func (r *coreReceiver) Settle(_ context.Context, batch []driver.Settlement) error {
	for i := range batch {
		st := &batch[i]
		if r.serve {
			r.c.replyTo.Delete(st.Msg) // a request released unhandled
		}
		if st.Outcome == driver.Nack {
			r.c.cfg.logger.Warn("nats core: handler failed; core NATS cannot redeliver, message dropped", "topic", r.topic, "group", r.o.Group, "id", st.Msg.ID, "error", st.Err)
		}
	}
	return nil
}

// Close unsubscribes; messages received and not handed to the engine are
// dropped.
func (r *coreReceiver) Close(context.Context) error {
	close(r.stop)
	err := r.ns.Unsubscribe()
	if err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
		return err
	}
	return nil
}
