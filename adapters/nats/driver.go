package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// This file is the consumer side of the adapter: the driver the library's
// engine (package engine) runs. It holds the broker-specific parts only:
// pull consumers read with requests sized to the engine's credit, their
// settlement (Ack, Nak, NakWithDelay, Term, InProgress), the same pulls
// on consumers without acknowledgements for Read, core subscriptions, and
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
// read with pull requests sized to the engine's credit.
func (d natsDriver) OpenReceiver(ctx context.Context, topic string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	if d.serve || d.c.cfg.mode == ModeCore {
		var r *coreReceiver
		err := d.c.whileUnreachable(ctx, "subscribe to "+topic, func(ctx context.Context) error {
			var err error
			r, err = d.c.openCore(ctx, topic, o, d.serve)
			return err
		})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	r := &jsReceiver{
		c: d.c, topic: topic, o: o, schedule: backoffSchedule(o),
		termReason: versionAtLeast(d.c.nc.ConnectedServerVersion(), 2, 10, 4),
		threshold:  max(o.Prefetch/2, 1),
		askMin:     max(o.Prefetch/4, 1),
	}
	err := d.c.whileUnreachable(ctx, "subscribe to "+topic, func(ctx context.Context) error { return r.open(ctx, nil) })
	if err != nil {
		return nil, fmt.Errorf("nats: %s: %w", topic, err)
	}
	return r, nil
}

// open finds r's stream, records its creation time (see created), runs
// before (when not nil) with the stream's info, and starts r's consumer.
func (r *jsReceiver) open(ctx context.Context, before func(info *jetstream.StreamInfo) error) error {
	err := r.c.withStream(ctx, r.topic, func(stream string) error {
		r.stream = stream
		s, err := r.c.js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("nats: look up stream %s: %w", stream, err)
		}
		info := s.CachedInfo()
		r.created = info.Created
		if before != nil {
			if err := before(info); err != nil {
				return err
			}
		}
		if err := r.start(ctx); err != nil {
			return err
		}
		r.consCreated = r.cons.CachedInfo().Created
		return nil
	})
	if err != nil {
		return err
	}
	// Registered after start: a reconnect before it changes nothing.
	r.status = r.c.nc.StatusChanged(natsgo.RECONNECTING, natsgo.CLOSED)
	r.settleStatus = r.c.nc.StatusChanged(natsgo.DISCONNECTED, natsgo.RECONNECTING, natsgo.CLOSED)
	if err := r.watchLeader(); err != nil {
		_ = r.Close(ctx)
		return err
	}
	return nil
}

// watchLeader subscribes to the server's advisory of a new leader of the
// subscription's consumer (clustered JetStream only; a single server
// sends none). When the server leading a consumer dies, the pull request
// it held is lost without a word, and the heartbeats' silence reveals it
// only after 2*pullHeartbeat; the advisory comes as soon as another server
// leads the consumer, and Receive then asks that one at once. One core
// subscription per receiver, idle unless leaders change.
func (r *jsReceiver) watchLeader() error {
	r.elected = make(chan struct{}, 1)
	prefix := "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED." + r.stream + "."
	sub, err := r.c.nc.Subscribe(prefix+"*", func(m *natsgo.Msg) {
		if name := r.consumerName.Load(); name != nil && m.Subject == prefix+*name {
			select {
			case r.elected <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	r.electedSub = sub
	return nil
}

// Pull requests: each waits on the server at most pullExpires and is kept
// alive with heartbeats every pullHeartbeat; a pull without any traffic for
// two heartbeats is lost (a consumer or server gone without a word: the
// node leading the consumer was killed) and is asked again. One second
// finds such a loss in 2s, which failover needs (with 5s, a group of an R3
// stream waited 2.6-3.9s after the new leader's election in 4 of 10 runs;
// with 1s, in 1 of 8); it costs an idle subscription one heartbeat message
// a second.
//
// restartTimeout bounds one attempt to find (or create) a lost consumer
// again: in TestFailoverStreamLeader a lookup sent while the consumer had
// no leader waited for JetStream's 5s API timeout, and its group resumed
// 3.7s after the election; an attempt cut at 1s is retried at once.
const (
	pullExpires    = 30 * time.Second
	pullHeartbeat  = time.Second
	restartTimeout = time.Second
	confirmTimeout = time.Second // see confirm
)

// jsReceiver is one subscription's pull consumer, read with pull requests
// on an inbox of its own (jsPull). The server never holds more of the
// subscription's messages delivered and unsettled than the engine has
// credit for: with O the messages requested and not yet delivered, B those
// delivered and not yet returned by Receive, and C the credit of the
// Receive call running (its max), a request for q messages is sent only
// when O+B+q <= C. As the engine's free credit F is never negative, O+B <=
// F+C holds throughout (a Receive returning k of C gives back C-k; a
// settlement gives back one, once the server has it, see Settle): what the
// engine holds plus O+B, the most the server can have delivered and not
// settled, stays within Prefetch. While the engine fetches, Settle asks
// for the settled messages itself, in a batch's last ack (see ackNext): O
// grows by them (or unasked does, which Receive counts as O until an
// AckNext asks for it) just before the engine gives back their credits,
// and on the server the acks come before that request. A request
// outstanding when Receive's ctx ends stays: what it delivers is returned
// by the next Receive. A pull is
// dropped (Close, a lost connection, a failed request) by dropping its
// inbox, which ends its requests on the server; a message the server sent
// before it saw the inbox go is nak'ed when it arrives (so around a
// reconnect the server may briefly count it beside the new pull's), or at
// Close once the server has dropped the requests (see dropWaiting), and
// one lost with a connection comes back after the ack wait.
// Settle and Extend use each delivery's token (the *natsgo.Msg) only.
type jsReceiver struct {
	c          *Client
	topic      string
	stream     string
	o          messaging.SubscribeOptions
	schedule   []time.Duration // the consumer's BackOff
	termReason bool            // the server keeps a Term's reason
	threshold  int             // the smallest request Receive sends while another is outstanding
	askMin     int             // the smallest request Settle sends while another is outstanding (see ackNext)
	// log marks a Read's receiver: its ephemeral consumer takes no
	// acknowledgements, so what the server sent to a pull dropped (a
	// reconnect, a new leader, a failed pull) is lost; the consumer is
	// then created again after the last message returned (see lose).
	log bool

	// Used by Receive and Close only.
	cons   jetstream.Consumer // nil once lost, until Receive starts again
	next   string             // the consumer's pull request subject
	pull   *jsPull            // nil once lost
	spare  []*natsgo.Msg      // delivered (taken from the pulls), not yet returned: part of B
	out    []driver.Delivery  // what take returned last, reused (see driver.Receiver)
	status chan natsgo.Status // the connection's reconnects and close
	// elected is signalled when the consumer (consumerName) elects a
	// leader: the pull held by the old one is gone without a word.
	elected      chan struct{}
	electedSub   *natsgo.Subscription
	consumerName atomic.Pointer[string]
	// Used by Settle only: the connection's losses.
	settleStatus chan natsgo.Status
	ephemeral    string // the ephemeral consumer's name, deleted by Close
	lastSeq      uint64 // stream sequence of the last message received
	// created is when the stream was created, as its info said when the
	// subscription opened (zero if the server did not say): the stream of
	// that name found with another creation time is the topic deleted
	// and created again (by a publisher, say), not a transient loss (see
	// lost and restart). The server keeps a stream's creation time across
	// restarts and leader changes; a consumer's it does not always keep.
	created time.Time
	// consCreated is the creation time of the consumer last started: one
	// found again with the same was kept, and so was its stream.
	consCreated time.Time
	// live is pull as Receive and Close set it, for Settle, which halts it
	// before its first release (see haltForRelease); released records
	// that it did.
	live     atomic.Pointer[jsPull]
	released bool
	// fetching holds the Done channel of the last Receive call's
	// context, for Settle: once it is closed the engine may have stopped
	// fetching, and Settle asks for nothing on its behalf (see ackNext).
	fetching atomic.Pointer[fetchDone]
}

// fetchDone holds a Receive call's ctx.Done().
type fetchDone struct{ done <-chan struct{} }

// start finds or creates the consumer and opens a pull on it. After a loss
// a subscription's ephemeral consumer is looked up and reused: it normally
// outlives the loss (a disconnect, silent heartbeats, a new leader; the
// server keeps it for its InactiveThreshold), with the messages it holds
// for redelivery (nak'ed with a delay, or delivered and unsettled), and
// the acknowledgements of handlers still running go to it. Only one gone
// (expired, not restored by a restarted server, deleted) is created again,
// after the last message received. A Read's consumer, which takes no
// acknowledgements, is always created again after a loss (see lose).
//
// In bind mode a group's consumer is not created again when resuming: only
// a deletion removes a durable consumer from a stream that still exists,
// and the error wraps jetstream.ErrConsumerNotFound (see Receive).
func (r *jsReceiver) start(ctx context.Context) error {
	c, o := r.c, r.o
	reconnects := c.nc.Stats().Reconnects // before the consumer is confirmed
	var err error
	if o.Group != "" {
		create := !c.cfg.bindStreams || r.consumerName.Load() == nil
		r.cons, err = c.group(ctx, r.stream, r.topic, o.Group, o.StartAt, &o, create)
	} else if r.cons, err = r.findEphemeral(ctx); err != nil {
		return err
	} else if r.cons == nil {
		cfg := jetstream.ConsumerConfig{
			Description:   "messaging ephemeral subscription of topic " + r.topic,
			FilterSubject: r.topic,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       o.AckDeadline,
			MaxDeliver:    -1,
			MaxAckPending: c.cfg.maxAckPending,
			// While the engine holds all it has credit for, the
			// subscription sends no pull request: its in-progress signals,
			// every third of the ack wait, keep the consumer active.
			InactiveThreshold: max(ephemeralInactive, o.AckDeadline, slices.Max(append([]time.Duration{0}, r.schedule...))),
		}
		setBackoff(&cfg, o) // MaxDeliver stays unlimited: see setBackoff
		start := o.StartAt
		if r.lastSeq > 0 {
			start = messaging.AfterOffset(strconv.FormatUint(r.lastSeq, 10))
		}
		if err = deliverPolicy(start, &cfg); err != nil {
			return err
		}
		if r.log {
			cfg.Description = "messaging read of topic " + r.topic
			cfg.AckPolicy, cfg.AckWait, cfg.MaxDeliver, cfg.MaxAckPending = jetstream.AckNonePolicy, 0, 0, 0
			cfg.MemoryStorage, cfg.Replicas = true, 1 // as nats.go's ordered consumers
		}
		if r.ephemeral != "" && r.log { // lost: the old one expires anyway
			_ = c.js.DeleteConsumer(ctx, r.stream, r.ephemeral)
		}
		if r.cons, err = c.js.CreateConsumer(ctx, r.stream, cfg); err != nil {
			return fmt.Errorf("nats: create ephemeral consumer on stream %s: %w", r.stream, err)
		}
		r.ephemeral = r.cons.CachedInfo().Name
	}
	if err != nil {
		return err
	}
	name := r.cons.CachedInfo().Name
	r.consumerName.Store(&name)
	r.next = jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + r.stream + "." + name
	if err := r.openPull(reconnects, true); err != nil {
		r.cons = nil
		return fmt.Errorf("nats: subscribe %s: %w", r.topic, err)
	}
	return nil
}

// findEphemeral returns the ephemeral consumer of a group-less
// subscription that lost it, if the server still has it: nil (and no
// error) when there is none yet, or for a Read, or when the server
// answers that it is gone. Any other failure of the lookup (no answer, a
// stream deleted) is returned: the consumer may well be alive, and
// replacing it would skip the messages it holds.
func (r *jsReceiver) findEphemeral(ctx context.Context) (jetstream.Consumer, error) {
	if r.ephemeral == "" || r.log {
		return nil, nil
	}
	cons, err := r.c.js.Consumer(ctx, r.stream, r.ephemeral)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: look up ephemeral consumer %s on stream %s: %w", r.ephemeral, r.stream, err)
	}
	return cons, nil
}

// openPull subscribes a new inbox for pull requests; reconnects is the
// connection's count of reconnects when it was read before confirmed was
// known (the consumer was just found or created).
func (r *jsReceiver) openPull(reconnects uint64, confirmed bool) error {
	p := &jsPull{nc: r.c.nc, wake: make(chan struct{}, 1), done: make(chan struct{}), reconnects: reconnects, heard: confirmed}
	inbox := r.c.nc.NewInbox()
	sub, err := r.c.nc.Subscribe(inbox, p.onMsg)
	if err != nil {
		return err
	}
	var once sync.Once
	sub.SetClosedHandler(func(string) { once.Do(func() { close(p.done) }) })
	p.sub, p.inbox = sub, inbox
	r.pull = p
	r.live.Store(p)
	return nil
}

// dropPull stops the pull: its requests end on the server (no interest in
// their inbox any more) and what it delivered is kept in spare for Receive.
// A message still on its way is nak'ed on arrival, back to the group at
// once.
func (r *jsReceiver) dropPull() {
	if r.pull != nil {
		r.spare = append(r.spare, r.pull.stop()...)
		r.pull = nil
		r.live.Store(nil)
	}
}

// Receive returns the messages delivered (up to max), blocking for the
// first, and requests more within max. After the consumer was lost it
// finds or creates it again.
func (r *jsReceiver) Receive(ctx context.Context, max int) ([]driver.Delivery, error) {
	clear(r.out) // the engine has copied them
	if f := r.fetching.Load(); f == nil || f.done != ctx.Done() {
		r.fetching.Store(&fetchDone{ctx.Done()})
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if r.cons == nil {
			if err := r.restart(ctx); err != nil {
				return nil, err
			}
		}
		select {
		case st := <-r.status:
			if err := r.statusChanged(ctx, st); err != nil {
				return r.take(max), err
			}
			continue
		case <-r.elected:
			r.lose() // asked again below, of the new leader
			continue
		default:
		}
		if r.pull == nil {
			if err := r.openPull(r.c.nc.Stats().Reconnects, false); err != nil {
				return r.take(max), r.lost(ctx, fmt.Errorf("nats: subscribe %s: %w", r.topic, err))
			}
		}
		p := r.pull
		p.mu.Lock()
		b := len(r.spare) + len(p.buf)
		q := max - p.outstanding - b - p.unasked
		var after *natsgo.Msg // see ackNext
		if p.outstanding == 0 && p.unasked > 0 {
			// Nothing is on its way, so no settlement may come to ask
			// for unasked: ask for it now, after its acks.
			q += p.unasked
			after = p.lastAcked
		}
		ask := p.err == nil && ctx.Err() == nil && q > 0 && (p.outstanding == 0 || q >= r.threshold)
		if ask {
			p.outstanding += q
			p.seen = time.Now()
			if after != nil {
				p.unasked, p.lastAcked = 0, nil
			}
		}
		pullErr, idle, outstanding, heard := p.err, time.Since(p.seen), p.outstanding, p.heard
		r.spare = append(r.spare, p.buf...)
		clear(p.buf)
		p.buf = p.buf[:0]
		p.mu.Unlock()
		if ask {
			if err := r.request(p, q, after); err != nil {
				p.mu.Lock()
				p.outstanding -= q
				p.mu.Unlock()
				return r.take(max), r.lost(ctx, fmt.Errorf("nats: pull %s: %w", r.topic, err))
			}
		}
		if len(r.spare) > 0 {
			return r.take(max), nil
		}
		if pullErr == nil && outstanding > 0 && idle > 2*pullHeartbeat {
			pullErr = jetstream.ErrNoHeartbeat
		}
		if pullErr != nil {
			r.lose()
			r.cons = nil
			err := fmt.Errorf("nats: pull %s: %w", r.topic, pullErr)
			// A Read's consumer is not kept active while its handler
			// runs (it takes no in-progress signals): it may expire.
			kept := !r.log && heard && r.c.nc.Stats().Reconnects == p.reconnects
			if r.consumerDeleted(ctx, pullErr, kept) {
				return r.take(max), fmt.Errorf("nats: consumer %s of topic %s deleted from stream %s: %w: %w", *r.consumerName.Load(), r.topic, r.stream, messaging.ErrTopicDeleted, err)
			}
			return r.take(max), r.lost(ctx, err)
		}
		wait := 2*pullHeartbeat - idle + time.Millisecond
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.wake:
		case <-timer.C:
		case st := <-r.status:
			if err := r.statusChanged(ctx, st); err != nil {
				return r.take(max), err
			}
		case <-r.elected:
			r.lose()
		}
	}
}

// restart finds or creates the consumer lost, on the stream the
// subscription opened on (see sameStream). Bounded: while the consumer
// has no leader (an election in a cluster) the lookup gets no answer, and
// JetStream's API timeout (5s) would hold the subscription that long
// after a new leader serves; the engine retries a failed start at once,
// backing off.
func (r *jsReceiver) restart(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, restartTimeout)
	err := r.start(sctx)
	if err == nil {
		err = r.sameStream(sctx)
	}
	cancel()
	if err != nil {
		if r.c.cfg.bindStreams && r.o.Group != "" && errors.Is(err, jetstream.ErrConsumerNotFound) && ctx.Err() == nil {
			return fmt.Errorf("nats: group %s of topic %s deleted from stream %s: %w: %w", r.o.Group, r.topic, r.stream, messaging.ErrTopicDeleted, err)
		}
		return r.lost(ctx, err)
	}
	if !r.log {
		r.c.cfg.logger.Info("nats: subscription resumed", "topic", r.topic, "group", r.o.Group)
	}
	return nil
}

// sameStream checks, after start found or created the consumer again,
// that it is on the stream the subscription opened on (see created): the
// consumer was kept (found with the creation time it had), or the
// stream's info tells the creation time the subscription knows. A stream
// created since is the topic deleted and created again: the consumer
// found or created (after the last message received, or at StartAt) is on
// the new stream, whose first messages it would skip, and the error wraps
// messaging.ErrTopicDeleted (Close deletes an ephemeral consumer; a
// group's durable one created meanwhile stays, as a new subscription of
// the group would have created it). Any error drops the consumer again:
// the next restart checks anew.
func (r *jsReceiver) sameStream(ctx context.Context) error {
	created := r.cons.CachedInfo().Created
	if !created.IsZero() && created.Equal(r.consCreated) {
		return nil
	}
	s, err := r.c.js.Stream(ctx, r.stream)
	if err == nil && r.recreated(s.CachedInfo()) {
		err = fmt.Errorf("nats: stream %s of topic %s deleted and created again: %w", r.stream, r.topic, messaging.ErrTopicDeleted)
	} else if err != nil {
		err = fmt.Errorf("nats: look up stream %s: %w", r.stream, err)
	}
	if err != nil {
		r.lose()
		r.cons = nil
		return err
	}
	r.consCreated = created
	return nil
}

// recreated reports whether info is of a stream created after the one the
// subscription opened on.
func (r *jsReceiver) recreated(info *jetstream.StreamInfo) bool {
	return !r.created.IsZero() && !info.Created.IsZero() && !info.Created.Equal(r.created)
}

// lose drops the pull; a Read's consumer too, with what the pull
// delivered and Receive did not return (without acknowledgements what the
// server sent meanwhile is lost): the next consumer starts after the last
// message returned.
func (r *jsReceiver) lose() {
	r.dropPull()
	if r.log {
		r.spare = nil
		r.cons = nil
	}
}

// consumerDeleted reports whether a pull failed because its consumer was
// deleted in bind mode (WithExistingStreams), where DeleteTopic deletes the
// topic's consumers and leaves the stream: the consumer lookup answers not
// found (the stream exists: else the answer is stream not found, which
// lost tells), and the consumer can have gone no other way. A group's
// durable consumer goes only when deleted (a server restart or a leader
// moving keeps it). An ephemeral one also expires after its client was
// away for its inactivity threshold, so its deletion needs one more
// proof: the server told the waiting pull (409 Consumer Deleted, sent only
// for a consumer removed from the stream), or the pull heard from the
// consumer with no reconnect since (kept (confirmed) true: the
// subscription kept the consumer active all along). A consumer found, or a
// lookup without an answer, leaves the loss transient. Without bind mode a
// deleted topic is a deleted stream, which lost tells.
func (r *jsReceiver) consumerDeleted(ctx context.Context, pullErr error, kept bool) bool {
	name := r.consumerName.Load()
	if !r.c.cfg.bindStreams || name == nil || r.o.Group == "" && !kept && !errors.Is(pullErr, jetstream.ErrConsumerDeleted) {
		return false
	}
	sctx, cancel := context.WithTimeout(ctx, restartTimeout)
	defer cancel()
	_, err := r.c.js.Consumer(sctx, r.stream, *name)
	return errors.Is(err, jetstream.ErrConsumerNotFound)
}

// statusChanged handles a change of the connection: when it is lost the
// pull is dropped (a server restarted without its requests would not say
// so) and a new one is opened; when it is closed the subscription ends.
func (r *jsReceiver) statusChanged(ctx context.Context, st natsgo.Status) error {
	r.lose()
	if st == natsgo.CLOSED || r.c.nc.IsClosed() {
		return r.lost(ctx, fmt.Errorf("nats: pull %s: %w", r.topic, natsgo.ErrConnectionClosed))
	}
	return nil
}

// request asks the server for q more messages on p's inbox. With after,
// a message this pull delivered, the request is that message's AckNext
// ("+NXT" and the request's body, sent to its ack subject): the server
// applies its ack (again, a no-op, if it was acked before), then takes the
// request, after every acknowledgement sent before it.
func (r *jsReceiver) request(p *jsPull, q int, after *natsgo.Msg) error {
	req, err := json.Marshal(pullRequest{Batch: q, Expires: pullExpires, Heartbeat: pullHeartbeat})
	if err != nil {
		return err
	}
	if after != nil {
		return r.c.nc.PublishRequest(after.Reply, p.inbox, append([]byte("+NXT "), req...))
	}
	return r.c.nc.PublishRequest(r.next, p.inbox, req)
}

// pullRequest is the body of a JetStream pull request.
type pullRequest struct {
	Batch     int           `json:"batch"`
	Expires   time.Duration `json:"expires"`
	Heartbeat time.Duration `json:"idle_heartbeat"`
}

// take returns up to max of the delivered messages, as deliveries.
func (r *jsReceiver) take(max int) []driver.Delivery {
	n := min(max, len(r.spare))
	if n == 0 {
		return nil
	}
	out := slices.Grow(r.out[:0], n)[:n]
	for i, m := range r.spare[:n] {
		out[i] = r.delivery(m)
	}
	r.out = out
	rest := copy(r.spare, r.spare[n:])
	clear(r.spare[rest:])
	r.spare = r.spare[:rest]
	return out
}

// jsPull is an inbox and the pull requests outstanding on it. Its
// subscription's callback counts what arrives.
type jsPull struct {
	nc    *natsgo.Conn
	sub   *natsgo.Subscription
	inbox string
	wake  chan struct{} // signalled on every arrival
	done  chan struct{} // closed when the subscription has ended

	mu          sync.Mutex
	buf         []*natsgo.Msg // delivered, not yet taken by Receive
	outstanding int           // requested, not yet delivered nor expired
	unasked     int           // settled, not asked for yet (see ackNext)
	lastAcked   *natsgo.Msg   // the last message acked without asking, while unasked > 0
	seen        time.Time     // the last request sent or arrival
	err         error         // the pull failed (a status other than a heartbeat or an expiry)
	stopped     bool          // later messages are nak'ed (kept in late while it is not nil)
	late        []*natsgo.Msg // see keepLate
	heard       bool          // the consumer was confirmed when the pull opened, or a message, heartbeat or expiry arrived
	reconnects  uint64        // the connection's reconnects when the pull opened

	halted sync.Once // see halt
}

// onMsg takes a message or a status of the pull's requests. A status has
// no reply subject: every message delivered carries its $JS.ACK one, so a
// message without payload and with a header Status (one published by
// another client, or by a version of this package that sent the name as
// such) is a message.
func (p *jsPull) onMsg(m *natsgo.Msg) {
	status := ""
	if m.Reply == "" && len(m.Data) == 0 && len(m.Header) > 0 {
		status = m.Header.Get("Status")
	}
	p.mu.Lock()
	if p.stopped {
		if status == "" && p.late != nil {
			p.late = append(p.late, m) // Close naks it (see jsReceiver.Close)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if status == "" {
			_ = m.Nak()
		}
		return
	}
	p.seen = time.Now()
	switch status {
	case "": // a message
		p.buf = append(p.buf, m)
		p.outstanding--
		p.heard = true
	case "100": // idle heartbeat
		p.heard = true
	case "408": // a request expired, with what it had left
		p.heard = true
		left, err := strconv.Atoi(m.Header.Get("Nats-Pending-Messages"))
		if err != nil {
			p.err = fmt.Errorf("nats: request timeout without a valid pending count %q", m.Header.Get("Nats-Pending-Messages"))
		} else {
			p.outstanding -= left
		}
	case "503":
		p.err = natsgo.ErrNoResponders // the consumer is gone (a restarted server without it)
	default:
		desc := m.Header.Get("Description")
		if strings.Contains(strings.ToLower(desc), "consumer deleted") {
			p.err = jetstream.ErrConsumerDeleted
		} else {
			p.err = fmt.Errorf("nats: pull request: status %s: %s", status, desc)
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// stop drains the pull's subscription (without waiting for the drain) and
// returns what was delivered and not taken; anything arriving later is
// nak'ed.
func (p *jsPull) stop() []*natsgo.Msg {
	p.mu.Lock()
	p.stopped = true
	buf := p.buf
	p.buf = nil
	p.mu.Unlock()
	p.halt()
	return buf
}

// halt ends the pull's interest on the server (Drain's UNSUB) and keeps its
// callback for what is already on its way, until done is closed. Once.
//
// While the connection is down it unsubscribes instead: nats.go sends no
// UNSUB then, and subscribes a draining subscription again on reconnect
// (its drain waits for a flush, which completes only after the reconnect).
// The server would then deliver to the pull's requests again, those it
// kept from before the loss and those buffered meanwhile: what this pull
// naks on arrival came straight back to it (a nak'ed message was seen
// delivered 250 times over), and once the drain ended nats.go dropped
// what still came, to wait for the ack deadline on the server.
func (p *jsPull) halt() {
	p.halted.Do(func() {
		if !p.nc.IsConnected() || p.sub.Drain() != nil {
			_ = p.sub.Unsubscribe()
		}
	})
}

// keepLate makes the messages that arrive after the pull stopped wait in
// late, for takeLate, instead of being nak'ed on arrival.
func (p *jsPull) keepLate() {
	p.mu.Lock()
	p.late = []*natsgo.Msg{}
	p.mu.Unlock()
}

// takeLate returns what arrived after the pull stopped; later arrivals are
// nak'ed on arrival.
func (p *jsPull) takeLate() []*natsgo.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	late := p.late
	p.late = nil
	return late
}

// takeWaiting returns first and what else waits in in, up to max in all,
// as deliveries, in buf's array while it has room.
func takeWaiting[T any](buf []driver.Delivery, first T, in <-chan T, max int, delivery func(T) driver.Delivery) []driver.Delivery {
	out := append(buf[:0], delivery(first))
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

func (r *jsReceiver) delivery(nm *natsgo.Msg) driver.Delivery {
	md, err := nm.Metadata()
	if err != nil {
		md = nil
	}
	m := toMessage(nm.Header, nm.Data, md, r.topic, r.o.Group)
	if md != nil {
		r.lastSeq = md.Sequence.Stream
	}
	return driver.Delivery{Msg: m, Token: nm, ExtendEvery: ackWait(r.schedule, r.o.AckDeadline, m.Attempt) / 3}
}

// lost sorts the failure of a consumer, a fetch or a log reader: a closed
// connection ends the subscription (ErrClosed), and so does the topic's
// stream gone, or found created again since the subscription opened (see
// created), a publisher having recreated it meanwhile (ErrTopicDeleted);
// anything else (a disconnect, a leader election, a consumer deleted from
// a stream that still exists, except in bind mode: see consumerDeleted)
// is transient: the next Receive creates the consumer again.
func (r *jsReceiver) lost(ctx context.Context, err error) error {
	c, stream := r.c, r.stream
	if c.nc.IsClosed() {
		return c.wrapConnErr(fmt.Errorf("%w: %w", natsgo.ErrConnectionClosed, err))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("nats: stream %s: %w: %w", stream, messaging.ErrTopicDeleted, err)
	}
	if errors.Is(err, messaging.ErrTopicDeleted) || errors.Is(err, messaging.ErrInvalidTopic) || errors.Is(err, messaging.ErrInvalidOption) {
		return err
	}
	// Bounded like a restart: during an election the lookup may get no
	// answer, and a timed-out one says nothing of a deletion.
	sctx, cancel := context.WithTimeout(ctx, restartTimeout)
	defer cancel()
	s, serr := c.js.Stream(sctx, stream)
	if errors.Is(serr, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("nats: stream %s deleted: %w: %w", stream, messaging.ErrTopicDeleted, err)
	}
	if serr == nil && r.recreated(s.CachedInfo()) {
		return fmt.Errorf("nats: stream %s deleted and created again: %w: %w", stream, messaging.ErrTopicDeleted, err)
	}
	return driver.Transient(err)
}

// Settle acks, naks (with the RetryAfter delay, else the BackOff entry of
// the attempt), terminates, or releases (a nak without delay, so another
// member gets the message at once) each delivery. The server handles a
// consumer's acknowledgements in order, on a queue apart from pull
// requests, and the engine's credit given back for the batch must be room
// on the server too. So the outcomes are sent without waiting, except
// one: while the engine fetches, the batch's last ack goes out last and
// asks for the batch's count of messages (ackNext), which the server
// takes only after applying the batch; otherwise (no ack in the batch,
// the subscription stopping, that ack's message delivered by an earlier
// pull) the last outcome is confirmed by the server (see confirm), and
// when Settle returns the server counts none of the batch as delivered
// and unsettled any more. A failure means the connection is gone (the
// server redelivers after the ack wait), the consumer is gone, or the
// confirmation is late.
func (r *jsReceiver) Settle(ctx context.Context, batch []driver.Settlement) error {
	if !r.released {
		for i := range batch {
			if batch[i].Outcome == driver.Release {
				r.released = true
				r.haltForRelease(ctx)
				break
			}
		}
	}
	var first error
	failed := 0
	note := func(st *driver.Settlement, err error) {
		if err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("nats: %s of message %s: %w", st.Outcome, st.Msg.ID, err)
			}
		}
	}
	p, next := r.pulling(), -1 // next: the ack sent last, asking for more
	if p != nil {
		for i := len(batch) - 1; i >= 0; i-- {
			if batch[i].Outcome == driver.Ack {
				next = i
				break
			}
		}
	}
	last := len(batch) - 1
	for i := range batch {
		st := &batch[i]
		jm := st.Token.(*natsgo.Msg)
		switch {
		case i == next: // sent last, below
		case i == last && next < 0:
			note(st, r.confirm(ctx, jm, st))
		default:
			note(st, r.settleOne(ctx, jm, st, false))
		}
	}
	if next >= 0 {
		st := &batch[next]
		jm := st.Token.(*natsgo.Msg)
		sent, err := r.ackNext(p, jm, len(batch))
		if !sent {
			err = r.confirm(ctx, jm, st)
		}
		note(st, err)
	}
	if first != nil {
		return fmt.Errorf("nats: %d of %d settlements failed; first: %w", failed, len(batch), first)
	}
	return nil
}

// pulling returns the live pull while the engine fetches: the context of
// the last Receive call has not ended, and no release has come (the
// subscription is not stopping). Else nil.
func (r *jsReceiver) pulling() *jsPull {
	if r.released || r.log {
		return nil
	}
	f := r.fetching.Load()
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
		return nil
	default:
	}
	return r.live.Load()
}

// ackNext acks jm with the request for k more messages on p's inbox
// (AckNext: see request), so that the server applies the acknowledgement,
// and every one sent before it, before it takes the request: it never
// counts the settled messages beside those it delivers for them, and
// Settle awaits no round trip. While other requests are outstanding a
// request is sent only for at least askMin messages, so that the server
// keeps few requests waiting (each waits until it is filled or expires);
// below that, jm is acked alone and k is added to p.unasked, which Receive
// leaves out of its requests: the next ackNext asks for it with its own,
// or, once nothing is outstanding (no settlement may follow), Receive as
// jm's AckNext. sent is false when nothing was sent (the connection down,
// p stopped or failed, or jm delivered by an earlier pull): jm is not
// settled yet.
func (r *jsReceiver) ackNext(p *jsPull, jm *natsgo.Msg, k int) (sent bool, err error) {
	if !r.c.nc.IsConnected() {
		return false, nil // a request kept for the reconnect would reach no pull
	}
	p.mu.Lock()
	if p.stopped || p.err != nil || jm.Sub != p.sub {
		p.mu.Unlock()
		return false, nil
	}
	if p.outstanding > 0 && k+p.unasked < r.askMin {
		p.mu.Unlock()
		// Acked before it counts in unasked: Receive's request after it
		// must follow every ack of the settlements it asks for.
		if err := jm.Ack(); err != nil {
			return true, err
		}
		p.mu.Lock()
		p.unasked += k
		p.lastAcked = jm
		p.mu.Unlock()
		return true, nil
	}
	k += p.unasked
	p.unasked, p.lastAcked = 0, nil
	p.outstanding += k
	p.seen = time.Now()
	p.mu.Unlock()
	err = r.request(p, k, jm)
	if err != nil {
		p.mu.Lock()
		p.outstanding -= k
		p.mu.Unlock()
	}
	return true, err
}

// confirm settles the last delivery of a batch and waits for the server's
// confirmation, until ctx ends or the connection is lost: then it is
// unconfirmed, like the others (the server has it, or redelivers after the
// ack wait).
func (r *jsReceiver) confirm(ctx context.Context, jm *natsgo.Msg, st *driver.Settlement) error {
	for stale := true; stale; { // events of an earlier loss
		select {
		case <-r.settleStatus:
		default:
			stale = false
		}
	}
	if !r.c.nc.IsConnected() {
		return r.settleOne(ctx, jm, st, false)
	}
	// Bounded: an acknowledgement sent while the consumer has no leader
	// (its server died, the connection already moved to another) is never
	// answered, and the credit of this batch, and of every batch queued
	// behind it, would wait for the engine's settle timeout (10s): groups
	// of an R3 stream resumed 2.6-3.7s after the new leader's election in
	// 2 of 10 failover runs. The confirmation normally takes a round trip.
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	done := make(chan error, 1)
	// The goroutine may outlive the call (a status change ends the wait),
	// and the engine reuses the batch once Settle returns: it reads a copy.
	own := *st
	go func() { done <- r.settleOne(ctx, jm, &own, true) }()
	select {
	case err := <-done:
		return err
	case <-r.settleStatus:
		return nil
	}
}

// settleOne sends st's outcome; to wait, as a request the server answers
// once it has applied it (within ctx).
func (r *jsReceiver) settleOne(ctx context.Context, jm *natsgo.Msg, st *driver.Settlement, wait bool) error {
	var opts []natsgo.AckOpt
	if wait {
		opts = append(opts, natsgo.Context(ctx))
	}
	switch st.Outcome {
	case driver.Ack:
		return jm.Ack(opts...)
	case driver.Term:
		if !r.termReason {
			return jm.Term(opts...) // servers before 2.10.4 ignore a reason'd term
		}
		reason := st.Err.Error()
		if len(reason) > 200 {
			reason = reason[:200]
		}
		body := []byte("+TERM " + reason) // the body TermWithReason of package jetstream sends
		if wait {
			_, err := r.c.nc.RequestWithContext(ctx, jm.Reply, body)
			return err
		}
		return r.c.nc.Publish(jm.Reply, body)
	case driver.Nack:
		if delay := r.nakDelay(st.Delay, st.Msg.Attempt); delay > 0 {
			return jm.NakWithDelay(delay, opts...)
		}
		return jm.Nak(opts...)
	case driver.Release:
		return jm.Nak(opts...)
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
// ack wait. A delivery settled meanwhile is skipped. So are the messages
// the pull's requests delivered that Receive has not taken yet: they wait
// for the engine while it runs a handler in its fetching goroutine (see
// package engine), which may take longer than their ack wait.
func (r *jsReceiver) Extend(_ context.Context, ds []driver.Delivery) error {
	var first error
	progress := func(m *natsgo.Msg) {
		err := m.InProgress()
		if err != nil && !errors.Is(err, natsgo.ErrMsgAlreadyAckd) && first == nil {
			first = err
		}
	}
	for _, d := range ds {
		progress(d.Token.(*natsgo.Msg))
	}
	if p := r.live.Load(); p != nil {
		p.mu.Lock()
		waiting := slices.Clone(p.buf)
		p.mu.Unlock()
		for _, m := range waiting {
			progress(m)
		}
	}
	return first
}

// Close stops the pull and waits for what its requests delivered meanwhile
// (see waitDrained), has the server drop its requests (dropWaiting), then
// naks every message received and not handed to the engine (back to the
// group at once), and deletes an ephemeral consumer. With the server
// unreachable it returns within about unavailable_timeout: the deletion is
// given up once the server has answered nothing for that long since Close
// began, and not tried while the connection is down (the server removes
// the consumer after its InactiveThreshold).
func (r *jsReceiver) Close(ctx context.Context) error {
	began := time.Now()
	if r.status != nil {
		r.c.nc.RemoveStatusListener(r.status)
		r.c.nc.RemoveStatusListener(r.settleStatus)
	}
	if r.electedSub != nil {
		_ = r.electedSub.Unsubscribe()
	}
	if p := r.pull; p != nil {
		p.keepLate()
		r.dropPull()
		r.waitDrained(ctx, p)
		r.spare = append(r.spare, p.takeLate()...)
	}
	if !r.log && len(r.spare) > 0 {
		r.dropWaiting(ctx)
		for _, m := range r.spare {
			_ = m.Nak()
		}
	}
	r.spare = nil
	if r.ephemeral != "" && r.c.nc.IsConnected() {
		dctx, stop := r.c.untilSilent(ctx, began)
		err := r.c.js.DeleteConsumer(dctx, r.stream, r.ephemeral)
		if err != nil && r.c.silenced(ctx, dctx) {
			err = fmt.Errorf("%w (%w)", r.c.errSilent, err)
		}
		stop(nil)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("nats: delete ephemeral consumer %s: %w", r.ephemeral, err)
		}
	}
	return nil
}

// waitDrained waits for the end of the drain of p (stopped), which comes
// once the server has confirmed the pull's UNSUB with a flush: nothing
// more arrives for its inbox then. Bounded, as haltForRelease's wait, by
// confirmTimeout (and ctx): the flush waits for nats.go's 10s timeout when
// the server answers nothing; and skipped while the connection is down,
// when halt unsubscribed the pull (nothing can arrive for it).
func (r *jsReceiver) waitDrained(ctx context.Context, p *jsPull) {
	if !r.c.nc.IsConnected() {
		return
	}
	wait, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	select {
	case <-p.done:
	case <-wait.Done():
	}
}

// dropWaiting has the server drop the pull requests of this subscription
// still waiting on the consumer once their inbox has gone (Close's drain
// has ended): a consumer's info makes it check its waiting requests for
// interest. Close naks what it holds only after that: on nats-server 2.9 a
// redelivery the consumer takes while its waiting requests have all lost
// their interest is dropped with them and waits for the ack deadline (and
// the stream's newest message is delivered again). Bounded by
// restartTimeout; on failure the naks go out anyway.
func (r *jsReceiver) dropWaiting(ctx context.Context) {
	name := r.consumerName.Load()
	if name == nil || r.c.nc.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, restartTimeout)
	defer cancel()
	_, _ = r.c.js.Consumer(ctx, r.stream, *name) // a CONSUMER.INFO request
}

// haltForRelease, before Settle's first release (releases come only as the
// subscription stops), ends the pull's requests on the server: it drains
// the pull's inbox (what arrives meanwhile stays for Receive or Close),
// then has the server drop the requests (dropWaiting). Released while the
// requests still had room, the messages would come straight back to them,
// one more delivery each (JetStream counts it in Attempt), and Close
// would have to give them back a second time. The drain's wait is bounded
// by confirmTimeout (a connection down holds it), the info request by
// restartTimeout; the releases go out anyway.
func (r *jsReceiver) haltForRelease(ctx context.Context) {
	p := r.live.Load()
	if p == nil {
		return
	}
	p.halt()
	wait, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	select {
	case <-p.done:
	case <-wait.Done():
		return
	}
	r.dropWaiting(ctx)
}

// toMessage builds the delivered message of a JetStream message with its
// metadata md (nil if it has none).
func toMessage(h natsgo.Header, data []byte, md *natsgo.MsgMetadata, topic, group string) *messaging.Message {
	m := &messaging.Message{Topic: topic, Group: group, Attempt: 1}
	decode(h, data, m)
	if md != nil {
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

// OpenLog starts a read of topic's stream at from: an ephemeral consumer
// without acknowledgements (no effect on groups), read like a group-less
// subscription's, and created again after the last message returned when
// a pull is lost. Core NATS keeps no log.
func (d natsDriver) OpenLog(ctx context.Context, topic string, from messaging.Position) (driver.Log, error) {
	if d.serve || d.c.cfg.mode == ModeCore {
		return nil, fmt.Errorf("nats: core NATS keeps no log: %w", messaging.ErrUnsupported)
	}
	if err := deliverPolicy(from, &jetstream.ConsumerConfig{}); err != nil {
		return nil, err
	}
	r := &jsReceiver{c: d.c, topic: topic, o: messaging.SubscribeOptions{StartAt: from}, log: true, threshold: logBatch / 2}
	err := d.c.whileUnreachable(ctx, "read "+topic, func(ctx context.Context) error {
		return r.open(ctx, func(info *jetstream.StreamInfo) error {
			if from.Kind != messaging.PositionLatest {
				return nil
			}
			// Position at the current end explicitly, so everything stored
			// after Read returns is delivered even if the consumer is
			// recreated (reconnect) before its first message.
			r.o.StartAt = messaging.AtOffset(strconv.FormatUint(info.State.LastSeq+1, 10))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %s from %v: %w", topic, from, err)
	}
	return logReader{r}, nil
}

// logBatch is the most messages a read requests at a time.
const logBatch = 100

// logReader reads a topic's stream for Read (see OpenLog).
type logReader struct{ r *jsReceiver }

// Next returns the next messages of the stream, blocking until there is
// one.
func (l logReader) Next(ctx context.Context) ([]*messaging.Message, error) {
	ds, err := l.r.Receive(ctx, logBatch)
	var msgs []*messaging.Message
	if len(ds) > 0 {
		msgs = make([]*messaging.Message, len(ds))
		for i, d := range ds {
			msgs[i] = d.Msg
		}
	}
	return msgs, err
}

// Close stops the read and deletes its consumer (the server would remove
// it after a minute of inactivity).
func (l logReader) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.r.Close(ctx)
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

	// Used by Receive only: the IDs of messages published without one (see
	// nameAnonymous), and the receive time of those of the Receive call
	// running without a Time.
	idBase   string
	named    uint64
	received time.Time
	out      []driver.Delivery // what Receive returned last, reused (see driver.Receiver)
}

// openCore subscribes to the plain subject topic (a queue group when o
// names a Group) and returns once the server has registered the interest.
func (c *Client) openCore(ctx context.Context, topic string, o messaging.SubscribeOptions, serve bool) (*coreReceiver, error) {
	r := &coreReceiver{c: c, topic: topic, o: o, serve: serve, idBase: nuid.Next(),
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
		return nil, fmt.Errorf("nats: %s: %w", topic, c.wrapConnErr(err))
	}
	var once sync.Once
	r.ns.SetClosedHandler(func(string) { once.Do(func() { close(r.nsEnded) }) })
	return r, nil
}

// Receive returns the messages waiting (up to max), blocking for the
// first. The subscription ends when the connection is closed.
func (r *coreReceiver) Receive(ctx context.Context, max int) ([]driver.Delivery, error) {
	clear(r.out) // the engine has copied them
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case m := <-r.in:
		r.received = time.Time{} // read once, by the first message without a Time
		r.out = takeWaiting(r.out, m, r.in, max, r.delivery)
		r.nameAnonymous(r.out)
		return r.out, nil
	case <-r.nsEnded:
		if !r.c.nc.IsClosed() {
			return nil, fmt.Errorf("nats: subscription to %s ended", r.topic)
		}
		return nil, fmt.Errorf("nats: subscription to %s: %w: %w", r.topic, messaging.ErrClosed, natsgo.ErrConnectionClosed)
	}
}

// delivery makes the message of nm. One without a Time gets the time its
// Receive call took it, read once per call; one without an ID gets one
// from nameAnonymous.
func (r *coreReceiver) delivery(nm *natsgo.Msg) driver.Delivery {
	m := &messaging.Message{Topic: r.topic, Group: r.o.Group, Attempt: 1}
	decode(nm.Header, nm.Data, m)
	if m.Time.IsZero() {
		if r.received.IsZero() {
			r.received = time.Now()
		}
		m.Time = r.received
	}
	if r.serve {
		r.c.replyTo.Store(m, nm.Reply)
	}
	return driver.Delivery{Msg: m}
}

// nameAnonymous gives each message of ds published without an ID (core
// mode's Publish sets none) one known to this delivery only: the
// subscription's NUID (22 characters, a random prefix and a sequence:
// unique) and the count of messages it named before, "<NUID>.<n>". The
// IDs of a call are parts of one string, made at once: a string per
// message was a sixth of the consumer's allocations.
func (r *coreReceiver) nameAnonymous(ds []driver.Delivery) {
	k := 0
	for _, d := range ds {
		if d.Msg.ID == "" {
			k++
		}
	}
	if k == 0 {
		return
	}
	width := len(r.idBase) + 1 + digits(r.named+uint64(k)-1)
	b := make([]byte, 0, k*width)
	for _, d := range ds {
		if d.Msg.ID != "" {
			continue
		}
		at := len(b)
		b = append(b, r.idBase...)
		b = append(b, '.')
		b = strconv.AppendUint(b, r.named, 10)
		r.named++
		// The bytes are never written again: the string shares them.
		d.Msg.ID = unsafe.String(&b[at], len(b)-at)
	}
}

// digits is the number of decimal digits of u.
func digits(u uint64) int {
	n := 1
	for ; u >= 10; u /= 10 {
		n++
	}
	return n
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
