package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
	"github.com/msgkit/messaging/internal/asyncpub"
	"github.com/msgkit/messaging/internal/dispatch"
)

// Client is a messaging.Client over one NATS connection, in JetStream mode
// (the default) or core mode. In JetStream mode it also implements
// messaging.Stream, messaging.Provisioner, messaging.TopicDeleter and
// messaging.BatchConsumer (in core mode their methods fail with
// messaging.ErrUnsupported or do nothing, as each documents). In both
// modes it offers native request/reply (Request, Serve) and
// messaging.Shutdowner. It is safe for concurrent use. Its consumer side is
// the library's engine (package engine) over the driver in driver.go.
type Client struct {
	*engine.Consumer                  // Subscribe, SubscribeBatch, Read
	serving          *engine.Consumer // Serve's subscriptions
	replyTo          sync.Map         // Serve: *messaging.Message -> reply subject

	nc    *natsgo.Conn
	js    jetstream.JetStream // nil in core mode
	cfg   config
	owned bool // Close closes nc

	// mu is held shared by each Publish and Request call for its duration
	// and exclusively by Close, so Close waits for calls in flight.
	mu     sync.RWMutex
	closed atomic.Bool

	sem     chan struct{} // JetStream publishes in flight, across calls
	pending inflight      // messages in flight -> their calls
	streams sync.Map      // topic -> stream name, for topics known to exist
	room    signal        // nats.go released an asynchronous publish (waitRoom)
	// ghostsUntil is until when (Unix ns; 0: never) nats.go may hold
	// publishes the adapter failed without its answer (see leftBehind).
	ghostsUntil atomic.Int64

	asyncJS *asyncpub.Tracker // PublishAsync in JetStream mode (publish_async.go)
	parking parking           // PublishAsync while the connection is down
	core    coreAsync         // PublishAsync in core mode (core_async.go)

	lossCh   chan natsgo.Status // JetStream mode: watchLoss's status changes
	lossDone chan struct{}      // closed when watchLoss returns

	// deadlines keeps when the server last answered a publish (an
	// acknowledgement, a flush) or the connection was last made: no
	// published message fails as unavailable sooner than
	// unavailable_timeout after it (see deadline).
	deadlines *asyncpub.Deadlines[struct{}]
	// errSilent fails the messages the server took and did not answer
	// within unavailable_timeout (see deadline).
	errSilent error
}

var (
	_ messaging.Client        = (*Client)(nil)
	_ messaging.Stream        = (*Client)(nil)
	_ messaging.Provisioner   = (*Client)(nil)
	_ messaging.TopicDeleter  = (*Client)(nil)
	_ messaging.BatchConsumer = (*Client)(nil)
	_ messaging.Shutdowner    = (*Client)(nil)
	_ Requester               = (*Client)(nil)
)

// New returns a Client over an existing connection, for code that already
// has one. The connection stays the caller's: Close does not close it. For
// the adapter's reconnect guarantees the connection should be made with
// natsgo.MaxReconnects(-1) (Open does that).
func New(nc *natsgo.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil *nats.Conn", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newClient(nc, false, cfg)
}

func newClient(nc *natsgo.Conn, owned bool, cfg config) (*Client, error) {
	c := &Client{nc: nc, cfg: cfg, owned: owned, sem: make(chan struct{}, cfg.maxInFlight), deadlines: asyncpub.NewDeadlines[struct{}](cfg.unavailable)}
	c.errSilent = fmt.Errorf("%w: no answer from the server within %v", messaging.ErrUnavailable, cfg.unavailable)
	c.core.closing = make(chan struct{})
	c.core.epoch = time.Now()
	eo := engine.Options{Name: "nats", Logger: cfg.logger, DefaultPrefetch: cfg.prefetch}
	c.Consumer = engine.New(natsDriver{c: c}, eo)
	c.serving = engine.New(natsDriver{c: c, serve: true}, eo)
	c.asyncJS = asyncpub.NewTracker(c.sem)
	if cfg.mode == ModeJetStream {
		js, err := jetstream.New(nc,
			// One more than the adapter's own bound, so the library never
			// stalls a publish: the adapter waits (honouring its context).
			jetstream.WithPublishAsyncMaxPending(cfg.maxInFlight+1),
			jetstream.WithPublishAsyncTimeout(cfg.publishTimeout),
			jetstream.WithPublishAsyncAckHandler(c.onAck),
			jetstream.WithPublishAsyncErrHandler(c.onAckErr),
			// Every JetStream API answer (a stream lookup, its creation)
			// is an answer of the server (see deadline).
			jetstream.WithClientTrace(&jetstream.ClientTrace{
				ResponseReceived: func(string, []byte, natsgo.Header) { c.answered() },
			}),
		)
		if err != nil {
			return nil, fmt.Errorf("%w: jetstream: %w", messaging.ErrInvalidOption, err)
		}
		c.js = js
		c.lossCh = nc.StatusChanged(natsgo.RECONNECTING, natsgo.CONNECTED, natsgo.CLOSED)
		c.lossDone = make(chan struct{})
		go c.watchLoss()
	}
	return c, nil
}

// Conn returns the underlying connection, for features the adapter does not
// wrap. Closing it ends the Client's subscriptions without settling their
// messages (JetStream redelivers them after the ack deadline).
func (c *Client) Conn() *natsgo.Conn { return c.nc }

// JetStream returns the JetStream context (nil in core mode).
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Mode returns the Client's mode.
func (c *Client) Mode() Mode { return c.cfg.mode }

// maxPayload is the server's limit for one message, headers included.
func (c *Client) maxPayload() int64 {
	if mp := c.nc.MaxPayload(); mp > 0 {
		return mp
	}
	return 1 << 20 // the server's default, until connected
}

// Capabilities reports what the Client guarantees in its mode. MaxMessageSize
// is the server's max_payload less room for the adapter's headers.
func (c *Client) Capabilities() messaging.Capabilities {
	maxSize := int(c.maxPayload()) - sizeSlack
	if c.cfg.mode == ModeCore {
		return messaging.Capabilities{
			// Queue groups share messages, but nothing redelivers a failed
			// or abandoned one: core NATS does not claim Groups.
			PerKeyOrder:    true,
			MaxMessageSize: maxSize,
			// Fire-and-forget: no ID nor time is made up per message;
			// consumers get a local ID and the receive time instead.
			PublishAssignsID: false,
		}
	}
	return messaging.Capabilities{
		Persistent:   c.cfg.storage == jetstream.FileStorage,
		Groups:       true,
		Replay:       true,
		ReplayByTime: true,
		GroupStartAt: true,
		PerKeyOrder:  true,
		AckDeadline:  true,
		DedupeByID:   true,
		// nats-server 2.9 can roll a message's delivery count back when its
		// redelivery meets a pull request whose subscriber has gone (seen
		// on 2.9.10: a message nak'ed by a closing subscription came back
		// with Attempt 1); claimed from 2.10 on (tested on 2.15).
		BrokerAttempts: versionAtLeast(c.nc.ConnectedServerVersion(), 2, 10, 0),
		// RedeliveryBackoff is the consumer's BackOff (servers 2.7 and
		// later; this module needs 2.9 for its pull consumers anyway).
		BrokerBackoff:  true,
		NativeDelay:    true,
		MaxMessageSize: maxSize,

		// The ID is the stream's deduplication key; WithCallerIDs sends
		// only the IDs callers set.
		PublishAssignsID: !c.cfg.callerIDs,
	}
}

// Publish sends msgs to topic; see messaging.Publisher.
//
// JetStream mode: messages are published asynchronously, pipelined (at most
// WithMaxInFlight unacknowledged across the Client), each with Nats-Msg-Id =
// ID so the stream drops a duplicate within its duplicate window; Publish
// returns once the stream acknowledged every message (stored per the
// server's sync policy), or a *messaging.PublishError naming the ones that
// were not. The topic's stream is created on first use unless
// WithExistingStreams. Messages of one call keep their order. Messages in
// flight when the connection drops are reported failed (nats:
// ErrDisconnected, wrapped in messaging.ErrUnavailable), and so are those
// sent as it dropped (kept in nats.go's reconnect buffer) if it is still
// down the unavailable timeout later; they may have been stored, and
// publishing them again within the stream's duplicate window stores them
// once. A message whose ID the stream already holds within that
// window (a repeat, or a different message reusing an ID) is dropped by the
// server and reported in the PublishError with an error wrapping
// messaging.ErrDuplicate; callers that republish on purpose pass the result
// through messaging.IgnoreDuplicates.
//
// Publish of no messages returns nil at once (after the checks: an error
// wrapping messaging.ErrClosed after Close, ctx's error, an invalid topic),
// also while the connection is down. While the connection is down (the
// client reconnecting), Publish waits for it up to unavailable_timeout
// (5s) or until ctx ends, then fails every message with an error wrapping
// messaging.ErrUnavailable. While it is up but the server answers nothing
// (hung), a message not acknowledged (JetStream) or flushed (core mode)
// unavailable_timeout after the call fails so too, unless the server
// answered something on the connection meanwhile: a slow server's
// messages wait their turn, up to publish_timeout (core mode: the
// flush, request_timeout or ctx's end). A message that finds nats.go's
// own count of unacknowledged publishes full (it keeps those failed so
// until publish_timeout; see PublishAsync) waits for room until then too,
// and fails so unsent.
// The lookup (or creation) of the topic's stream on first use is bounded
// so too: it fails every message with messaging.ErrUnavailable once the
// server has answered nothing for unavailable_timeout since it began.
// Every failure wraps a sentinel: a message unacknowledged within
// publish_timeout (however short), or that no stream answered, also after
// the stream was looked up (or created) again, fails with
// messaging.ErrUnavailable; with WithExistingStreams, one whose subject no
// stream captures (deleted, or never made) with messaging.ErrTopicNotFound.
//
// Core mode: messages are published and the connection is flushed, so
// Publish returns once the server has received them; it does not wait for
// (or know of) any subscriber. Publish sets no ID and no Time
// (Capabilities().PublishAssignsID is false): a message goes out with the
// ID, Key, Time and Header its caller set, each in its header, and one
// with none of them as a bare payload, exactly what nats.go's Publish
// sends; consumers give a message without an ID a locally generated one,
// and without a Time the time it was received. Set ID (and Time) yourself
// to correlate a message across processes.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	if len(msgs) > 0 { // no messages: nothing to wait for, only the checks
		if err := c.awaitConnection(ctx); err != nil {
			return allFailed(len(msgs), fmt.Errorf("nats: publish to %s: %w", topic, err))
		}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return fmt.Errorf("nats: publish: %w", messaging.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	maxPayload := c.maxPayload()
	if c.cfg.mode == ModeCore {
		if err := driver.CheckPublish(topic, msgs, int(maxPayload)-sizeSlack); err != nil {
			return err
		}
		return c.publishCore(ctx, topic, msgs, maxPayload)
	}
	if err := c.preparePublish(topic, msgs, maxPayload); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	nms := make([]*natsgo.Msg, len(msgs))
	for i, m := range msgs {
		nm, err := c.encodeJS(topic, m, maxPayload)
		if err != nil {
			return fmt.Errorf("nats: publish to %s: %s%w", topic, driver.Nth(i, len(msgs)), err)
		}
		nms[i] = nm
	}
	return c.publishJS(ctx, topic, nms)
}

// allFailed is the error of a Publish of n messages that all failed with
// err: a *messaging.PublishError naming each, or err itself when n is 0.
func allFailed(n int, err error) error {
	if n == 0 {
		return err
	}
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return &messaging.PublishError{Errs: errs}
}

// awaitConnection returns at once while the connection is up; while it is
// down (reconnecting) it waits for it up to the unavailable timeout or until
// ctx ends, then fails with messaging.ErrUnavailable.
func (c *Client) awaitConnection(ctx context.Context) error {
	if c.nc.IsConnected() {
		return nil
	}
	return c.awaitConnectionUntil(ctx, time.Now().Add(c.cfg.unavailable))
}

// awaitConnectionUntil is awaitConnection with the wait ending at deadline.
func (c *Client) awaitConnectionUntil(ctx context.Context, deadline time.Time) error {
	if c.nc.IsConnected() || c.closed.Load() {
		return nil // a closed client fails in Publish with ErrClosed
	}
	ch := c.nc.StatusChanged(natsgo.CONNECTED, natsgo.CLOSED)
	defer c.nc.RemoveStatusListener(ch)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for !c.nc.IsConnected() {
		if c.nc.IsClosed() {
			return fmt.Errorf("%w: %w", messaging.ErrClosed, natsgo.ErrConnectionClosed)
		}
		select {
		case <-ch:
		case <-t.C:
			return fmt.Errorf("%w: not connected within %v (%v)", messaging.ErrUnavailable, c.cfg.unavailable, c.nc.Status())
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", messaging.ErrUnavailable, ctx.Err())
		}
	}
	c.answered() // the server answered the reconnect
	return nil
}

// whileUnreachable bounds a topology or admin call (op names it in the
// errors it makes) as Publish is bounded: it waits for the connection up
// to the unavailable timeout from the call (or until ctx ends), then runs
// f; when the connection is lost while f waits for the server (nats.go
// keeps a request made while reconnecting until its context ends), f's
// context is cancelled and f runs again once connected, within the same
// timeout. A server that stays connected and answers nothing (see
// deadline) fails f the same way, unavailable_timeout after the call or
// after the server's last answer, whichever is later, however long the
// JetStream API timeout. The error wraps messaging.ErrUnavailable when the
// timeout passed without a connection or an answer, ctx's error when ctx
// ended first, or is f's.
func (c *Client) whileUnreachable(ctx context.Context, op string, f func(ctx context.Context) error) error {
	begin := time.Now()
	deadline := begin.Add(c.cfg.unavailable)
	for {
		if err := c.awaitConnectionUntil(ctx, deadline); err != nil {
			return fmt.Errorf("nats: %s: %w", op, err)
		}
		lost := c.nc.StatusChanged(natsgo.DISCONNECTED, natsgo.RECONNECTING, natsgo.CLOSED)
		if !c.nc.IsConnected() && !c.nc.IsClosed() {
			c.nc.RemoveStatusListener(lost)
			continue // lost before the listener was in place
		}
		attempt, cancel := c.untilSilent(ctx, begin)
		var wasLost bool
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-lost:
				wasLost = true
				cancel(nil)
			case <-attempt.Done():
			}
		}()
		err := f(attempt)
		silent := err != nil && c.silenced(ctx, attempt)
		cancel(nil)
		<-watched
		if !wasLost {
			// The watcher may have seen attempt end before the loss, both
			// ready: nats.go sends the status (into lost's buffer) before
			// it fails the calls the loss cut short, so it is there now.
			select {
			case <-lost:
				wasLost = true
			default:
			}
		}
		c.nc.RemoveStatusListener(lost)
		if silent && !wasLost {
			return fmt.Errorf("nats: %s: %w", op, c.errSilent)
		}
		if err == nil || !wasLost || ctx.Err() != nil || c.nc.IsClosed() {
			return err
		}
		// The connection was lost meanwhile: wait for it again.
	}
}

// deadline is when a message published (sent to the server, or for a
// Publish call, given to it) at sent fails unanswered with c.errSilent,
// wrapping messaging.ErrUnavailable: unavailable_timeout after then, or
// after the server last answered if that is later. A server that takes
// messages and answers none is unavailable, however long publish_timeout
// or request_timeout; one that is slow but answers is not, and the
// messages queued behind its answers wait their turn.
func (c *Client) deadline(sent time.Time) time.Time { return c.deadlines.Deadline(struct{}{}, sent) }

// answered notes that the server answered now (see deadline).
func (c *Client) answered() { c.deadlines.Answered(struct{}{}) }

// publishCore sends msgs (checked by driver.CheckPublish) to the plain subject
// topic and flushes. A bare message (bare) goes out as nats.go's Publish
// sends a payload, without a header block; the others are all encoded
// before anything is sent, so one that cannot be encoded fails the call
// with nothing sent.
func (c *Client) publishCore(ctx context.Context, topic string, msgs []*messaging.Message, maxPayload int64) error {
	if len(msgs) == 0 {
		return nil
	}
	entered := time.Now()
	sent := func(int) time.Time { return entered }
	var nms []*natsgo.Msg // by index, nil for a bare message; nil while all are
	for i, m := range msgs {
		if bare(m) {
			continue
		}
		nm, err := encode(topic, m, maxPayload, 0)
		if err != nil {
			return fmt.Errorf("nats: publish to %s: %s%w", topic, driver.Nth(i, len(msgs)), err)
		}
		if nms == nil {
			nms = make([]*natsgo.Msg, len(msgs))
		}
		nms[i] = nm
	}
	var errs []error // nil while nothing failed
	for i, m := range msgs {
		var err error
		if nms != nil && nms[i] != nil {
			err = c.nc.PublishMsg(nms[i])
		} else {
			err = c.nc.Publish(topic, m.Payload)
		}
		if err != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			errs[i] = fmt.Errorf("nats: publish to %s: %w", topic, c.wrapConnErr(err))
		}
	}
	if err := c.flushSent(ctx, 1, sent, func(int) {}); err != nil {
		if errs == nil {
			errs = make([]error, len(msgs))
		}
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("nats: publish to %s: flush: %w", topic, c.wrapConnErr(err))
			}
		}
	}
	if errs != nil {
		return &messaging.PublishError{Errs: errs}
	}
	return nil
}

// preparePublish checks msgs before a JetStream publish and, unless
// WithCallerIDs, gives those without an ID and Time new ones.
func (c *Client) preparePublish(topic string, msgs []*messaging.Message, maxPayload int64) error {
	if c.cfg.callerIDs {
		return driver.CheckPublish(topic, msgs, int(maxPayload)-sizeSlack)
	}
	return driver.PreparePublish(topic, msgs, int(maxPayload)-sizeSlack)
}

// encodeJS is encode for a JetStream publish; a bare message (possible
// with WithCallerIDs) goes out without a header block.
func (c *Client) encodeJS(topic string, m *messaging.Message, maxPayload int64) (*natsgo.Msg, error) {
	if bare(m) { // its size was checked with the others (driver.CheckPublish)
		return &natsgo.Msg{Subject: topic, Data: m.Payload}, nil
	}
	return encode(topic, m, maxPayload, c.maxHeader())
}

// bare reports whether m is a payload only: core mode (and JetStream mode
// with WithCallerIDs) sends it without a header block.
func bare(m *messaging.Message) bool {
	return m.ID == "" && m.Key == "" && m.Time.IsZero() && len(m.Header) == 0
}

// flushSent is flush for n messages published at sent(0) <= sent(1) <=
// ...: while the server answers nothing, expire(k) is called as the
// deadlines (see deadline) of the first k messages have passed, and once
// all have, flushSent returns c.errSilent; otherwise it returns the flush's
// result for the messages left. The flush runs on in its own goroutine
// until it ends (ctx's end, request_timeout when none), so that its answer
// still counts (see answered) when it comes after the deadlines.
func (c *Client) flushSent(ctx context.Context, n int, sent func(i int) time.Time, expire func(k int)) error {
	done := make(chan error, 1)
	go func() { done <- c.flush(ctx) }()
	t := time.NewTimer(time.Until(c.deadline(sent(0))))
	defer t.Stop()
	for off := 0; ; {
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
		now := time.Now()
		k := off
		for k < n && !now.Before(c.deadline(sent(k))) {
			k++
		}
		if k > off {
			expire(k)
			if off = k; off == n {
				return c.errSilent
			}
		}
		t.Reset(c.deadline(sent(off)).Sub(now))
	}
}

// flush waits until the server has processed everything sent so far (an
// answer: see answered). A flush unanswered within request_timeout (used
// when ctx has no deadline) fails with an error wrapping
// messaging.ErrUnavailable: the server took the bytes and answered
// nothing; one cut short by ctx's end fails with ctx's error.
func (c *Client) flush(ctx context.Context) error {
	var err error
	parent := ctx
	if ctx.Done() == nil { // never cancelled (Background): no context to make
		err = c.nc.FlushTimeout(c.cfg.requestTimeout)
	} else {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.cfg.requestTimeout)
			defer cancel()
		}
		err = c.nc.FlushWithContext(ctx)
	}
	if err == nil {
		c.answered()
		return nil
	}
	if parent.Err() == nil && (errors.Is(err, natsgo.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("%w: no answer to a flush within request_timeout %v: %w", messaging.ErrUnavailable, c.cfg.requestTimeout, err)
	}
	if errors.Is(err, natsgo.ErrConnectionClosed) && !c.nc.IsClosed() {
		// A flush cut short by a reconnect reports a closed connection.
		return fmt.Errorf("%w: interrupted by a reconnect: %w", messaging.ErrUnavailable, err)
	}
	return err
}

// lostWrite reports whether err is a failed write to the connection's
// socket (nats.go returns it from the publish whose bytes it was flushing
// as the connection broke): the connection is lost.
func lostWrite(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// wrapConnErr makes a closed connection an ErrClosed, a lost one (or a full
// reconnect buffer), a publish unacknowledged within publish_timeout and
// one no stream answered (after the adapter's resend) an ErrUnavailable,
// and a message over the server's limit an ErrMessageTooLarge.
func (c *Client) wrapConnErr(err error) error {
	switch {
	case errors.Is(err, messaging.ErrClosed), errors.Is(err, messaging.ErrUnavailable):
	case errors.Is(err, natsgo.ErrConnectionClosed):
		return fmt.Errorf("%w: %w", messaging.ErrClosed, err)
	case errors.Is(err, natsgo.ErrDisconnected), errors.Is(err, natsgo.ErrConnectionReconnecting), errors.Is(err, natsgo.ErrReconnectBufExceeded), lostWrite(err),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs): // see waitRoom
		return fmt.Errorf("%w: %w", messaging.ErrUnavailable, err)
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		// No acknowledgement within publish_timeout: the server (or the
		// stream's leader) answered nothing for this message.
		return fmt.Errorf("%w: no acknowledgement within publish_timeout %v: %w", messaging.ErrUnavailable, c.cfg.publishTimeout, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		// No responder for the subject after the adapter's one resend: the
		// stream has no leader (an election), or is gone again.
		return fmt.Errorf("%w: no stream answered: %w", messaging.ErrUnavailable, err)
	case errors.Is(err, natsgo.ErrMaxPayload):
		return fmt.Errorf("%w: %w", messaging.ErrMessageTooLarge, err)
	}
	return err
}

func (c *Client) publishJS(ctx context.Context, topic string, nms []*natsgo.Msg) error {
	if _, err := c.publishStream(ctx, topic); err != nil {
		return allFailed(len(nms), fmt.Errorf("nats: publish to %s: %w", topic, err))
	}
	errs, failed := c.sendAsync(ctx, nms)
	if failed {
		// The stream may have been deleted since it was looked up: create it
		// again and resend what found no stream (nothing of it was stored).
		var retry []int
		for i, err := range errs {
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				retry = append(retry, i)
			}
		}
		if len(retry) > 0 && ctx.Err() == nil {
			c.streams.Delete(topic)
			if _, err := c.publishStream(ctx, topic); err == nil {
				again := make([]*natsgo.Msg, len(retry))
				for j, i := range retry {
					again[j] = nms[i]
				}
				errs2, _ := c.sendAsync(ctx, again)
				for j, i := range retry {
					errs[i] = errs2[j]
				}
			} else {
				for _, i := range retry { // the lookup's error says why
					errs[i] = err
				}
			}
		}
		failed = false
		for i, err := range errs {
			if err != nil {
				errs[i] = fmt.Errorf("nats: publish to %s: %w", topic, c.wrapConnErr(err))
				failed = true
			}
		}
	}
	if failed {
		return &messaging.PublishError{Errs: errs}
	}
	return nil
}

// publishStream is c.stream for Publish: a lookup (the stream is not
// cached) is bounded by publish_timeout, like an acknowledgement, and by
// the deadline of a request sent now (see lookUpStream). No
// responder is also what a replicated stream answers while it elects a new
// leader, after which the stream is looked up again; that lookup, and any
// JetStream API request while the cluster elects its meta leader, waits for
// the election, which would otherwise hold the call for its whole deadline.
func (c *Client) publishStream(ctx context.Context, topic string) (string, error) {
	if v, ok := c.streams.Load(topic); ok {
		return v.(string), nil
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.publishTimeout)
	defer cancel()
	return c.lookUpStream(lctx, topic)
}

// lookUpStream is c.stream for a publish, whose lookup (or creation) of the
// stream fails with c.errSilent, wrapping messaging.ErrUnavailable, once
// the server has answered nothing past the deadline (see deadline) of a
// request sent as it begins: each answer (the lookup's, creating the
// stream's, any other) moves that deadline on, so a slow server's lookup
// goes on.
func (c *Client) lookUpStream(ctx context.Context, topic string) (string, error) {
	if v, ok := c.streams.Load(topic); ok {
		return v.(string), nil
	}
	lctx, cancel := c.untilSilent(ctx, time.Now())
	defer cancel(nil)
	name, err := c.stream(lctx, topic)
	if err != nil && c.silenced(ctx, lctx) {
		return "", fmt.Errorf("nats: look up the stream of %s: %w", topic, c.errSilent)
	}
	return name, err
}

// untilSilent returns a context derived from ctx that ends, with the cause
// c.errSilent, once the server has answered nothing past the deadline of a
// request sent at sent (see deadline): every answer moves the deadline on,
// so a slow server's requests go on and a silent server's fail.
func (c *Client) untilSilent(ctx context.Context, sent time.Time) (context.Context, context.CancelCauseFunc) {
	lctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTimer(time.Until(c.deadline(sent)))
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			dl := c.deadline(sent)
			if !time.Now().Before(dl) {
				cancel(c.errSilent)
				return
			}
			t.Reset(time.Until(dl))
		}
	}()
	return lctx, cancel
}

// silenced reports whether lctx, made by untilSilent from ctx, ended
// because the server was silent (and not because ctx ended).
func (c *Client) silenced(ctx, lctx context.Context) bool {
	return ctx.Err() == nil && errors.Is(context.Cause(lctx), c.errSilent)
}

// sendAsync publishes nms asynchronously, each holding one slot of c.sem
// until the server's acknowledgement (or an error) comes back through the
// JetStream context's callbacks, and returns one error per message. The
// caller wakes once, when the last acknowledgement of its call is in. Each
// message's deadline (see deadline) runs from the call: watchLoss fails it
// then, unanswered, and one that waited that long for room in the window
// (the adapter's, or nats.go's: waitRoom) is not sent.
func (c *Client) sendAsync(ctx context.Context, nms []*natsgo.Msg) ([]error, bool) {
	b := &pubBatch{errs: make([]error, len(nms)), done: make(chan struct{}), entered: time.Now()}
	var stop error
	sent := 0
	for i, nm := range nms {
		select {
		case c.sem <- struct{}{}:
		default:
			select {
			case c.sem <- struct{}{}:
				if !time.Now().Before(c.deadline(b.entered)) {
					<-c.sem
					stop = fmt.Errorf("nats: not sent, the window (WithMaxInFlight) full: %w", c.errSilent)
				}
			case <-ctx.Done():
				stop = ctx.Err()
			}
		}
		var opts []jetstream.PublishOpt
		if stop == nil {
			var err error
			if opts, err = c.roomFor(ctx, b.entered, nil); err != nil {
				<-c.sem
				stop = err
			}
		}
		if stop != nil {
			break
		}
		c.pending.store(nm, pubSlot{b: b, i: i})
		if _, err := c.js.PublishMsgAsync(nm, opts...); err != nil {
			if _, ok := c.pending.take(nm); ok {
				c.resolve(pubSlot{b: b, i: i}, err)
			}
		}
		sent++
	}
	b.sealed(sent)
	if stop == nil {
		select {
		case <-b.done:
		case <-ctx.Done():
			stop = ctx.Err()
		}
	}
	return b.result(sent, stop)
}

// leftBehind notes that the adapter failed publishes still in nats.go's
// count (expireSilent, watchLoss, closeAsync): nats.go holds them until
// their answer, the loss of the connection or publish_timeout after they
// were sent, so for at most publish_timeout from now (and a second's
// slack for its timers).
func (c *Client) leftBehind() {
	c.ghostsUntil.Store(time.Now().Add(c.cfg.publishTimeout + time.Second).UnixNano())
}

// noRetry makes nats.go report a "no responders" answer (no stream, or a
// stream electing its leader) at once instead of publishing the message
// again by itself, 250ms later, after the messages sent meanwhile: the
// adapter sends such a message again itself, in the order of the messages
// of its key (publishJS; PublishAsync: resend).
var noRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

// roomFor is waitRoom for a message that entered at entered, and returns the
// options of its PublishMsgAsync: noRetry, and stallWait while nats.go may
// hold publishes the adapter failed (leftBehind); otherwise nats.go's
// count is the messages holding a slot of c.sem, this one not yet
// among them, so it has room.
func (c *Client) roomFor(ctx context.Context, entered time.Time, stop <-chan struct{}) ([]jetstream.PublishOpt, error) {
	u := c.ghostsUntil.Load()
	if u == 0 {
		return noRetry, nil
	}
	if time.Now().UnixNano() >= u {
		c.ghostsUntil.CompareAndSwap(u, 0) // unless one was left behind since
		return noRetry, nil
	}
	if err := c.waitRoom(ctx, entered, stop); err != nil {
		return nil, err
	}
	return []jetstream.PublishOpt{noRetry[0], c.stallWait(entered)}, nil
}

// waitRoom waits until nats.go can take one more asynchronous publish
// without stalling, for a message that entered (its call, see deadline) at
// entered and holds its slot of c.sem. nats.go keeps a publish in its own
// count (max_in_flight+1) until its answer, the loss of the connection or
// publish_timeout, also one the adapter failed as unanswered (c.errSilent):
// while a silent server holds the connection, the adapter's window has
// room again before nats.go's. The message waits, each release waking it,
// until its deadline, when it fails with c.errSilent unsent; or until ctx
// ends, or stop is closed (Close: messaging.ErrClosed).
func (c *Client) waitRoom(ctx context.Context, entered time.Time, stop <-chan struct{}) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		released := c.room.wait() // before the count: a release in between closes it
		if c.js.PublishAsyncPending() <= c.cfg.maxInFlight {
			return nil
		}
		dl := c.deadline(entered)
		if !time.Now().Before(dl) {
			return fmt.Errorf("nats: not sent, nats.go still holds max_in_flight unanswered publishes (until publish_timeout %v): %w", c.cfg.publishTimeout, c.errSilent)
		}
		if t == nil {
			t = time.NewTimer(time.Until(dl))
		} else {
			t.Reset(time.Until(dl))
		}
		select {
		case <-released:
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("nats: not sent, waiting for room in nats.go's window: %w", ctx.Err())
		case <-stop:
			return fmt.Errorf("nats: not sent, waiting for room in nats.go's window when the client closed: %w", messaging.ErrClosed)
		}
	}
}

// stallWait is how long nats.go may stall a publish of a message that
// entered at entered, whose waitRoom found room another sender may have
// taken since: up to its deadline; nats.go then fails it with
// jetstream.ErrTooManyStalledMsgs (wrapConnErr: messaging.ErrUnavailable).
func (c *Client) stallWait(entered time.Time) jetstream.PublishOpt {
	return jetstream.WithStallWait(max(time.Until(c.deadline(entered)), time.Millisecond))
}

// signal wakes the goroutines waiting for an event (waitRoom: a release by
// nats.go). notify takes no allocation while none waits.
type signal struct {
	armed atomic.Bool // ch is set (read by notify without the lock)
	mu    sync.Mutex
	ch    chan struct{} // closed by the next notify; nil while none waits
}

// wait returns a channel closed by the next notify.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
		s.armed.Store(true)
	}
	return s.ch
}

func (s *signal) notify() {
	if !s.armed.Load() {
		return
	}
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
		s.armed.Store(false)
	}
	s.mu.Unlock()
}

// onAck and onAckErr are the JetStream context's async publish callbacks.
// A duplicate (the stream already held a message with this Nats-Msg-Id
// within its duplicate window, and dropped this one) resolves with
// messaging.ErrDuplicate.
func (c *Client) onAck(_ jetstream.JetStream, nm *natsgo.Msg, ack *jetstream.PubAck) {
	c.answered()
	c.room.notify()
	if s, ok := c.pending.take(nm); ok {
		var err error
		if ack != nil && ack.Duplicate {
			err = fmt.Errorf("%w: stream %s already holds message %s (sequence %d) and dropped this one", messaging.ErrDuplicate, ack.Stream, nm.Header.Get(HeaderMsgID), ack.Sequence)
		}
		c.resolve(s, err)
	}
}

func (c *Client) onAckErr(_ jetstream.JetStream, nm *natsgo.Msg, err error) {
	if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) && !errors.Is(err, natsgo.ErrDisconnected) {
		c.answered() // the server's error (no stream, an API error)
	}
	c.room.notify()
	if s, ok := c.pending.take(nm); ok {
		c.resolve(s, err)
	}
}

// resolve records the outcome of one message and frees its slot.
func (c *Client) resolve(s pubSlot, err error) {
	if s.a != nil {
		c.resolveAsync(s.a, err) // frees the slot
		return
	}
	<-c.sem
	s.b.resolve(s.i, err)
}

// pubSlot locates a message in flight: its call's batch and index.
type pubSlot struct {
	b *pubBatch
	i int
	a *asyncMsg // a PublishAsync message instead
}

// sent returns when s's message was given to Publish, or sent by
// PublishAsync: its deadline runs from then (see Client.deadline).
func (s pubSlot) sent() time.Time {
	if s.a != nil {
		return s.a.entered
	}
	return s.b.entered
}

// inflight maps the messages in flight to their slots.
type inflight struct {
	mu sync.Mutex
	m  map[*natsgo.Msg]pubSlot
}

func (f *inflight) store(nm *natsgo.Msg, s pubSlot) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[*natsgo.Msg]pubSlot{}
	}
	f.m[nm] = s
	f.mu.Unlock()
}

func (f *inflight) take(nm *natsgo.Msg) (pubSlot, bool) {
	f.mu.Lock()
	s, ok := f.m[nm]
	if ok {
		delete(f.m, nm)
	}
	f.mu.Unlock()
	return s, ok
}

// pubBatch collects the outcomes of one sendAsync call.
type pubBatch struct {
	entered   time.Time // when the call began (see Client.deadline)
	mu        sync.Mutex
	errs      []error
	resolved  []bool
	open      int  // messages sent and not resolved (negative until sealed)
	sealedAll bool // no more messages will be sent
	returned  bool // the call returned: later outcomes are dropped
	done      chan struct{}
}

func (b *pubBatch) resolve(i int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.returned {
		return
	}
	if b.resolved == nil {
		b.resolved = make([]bool, len(b.errs))
	}
	b.errs[i], b.resolved[i] = err, true
	b.open--
	if b.open == 0 && b.sealedAll {
		close(b.done)
	}
}

// sealed records that sent messages were sent in all (counted here, not
// one lock per message; resolutions before it make open negative).
func (b *pubBatch) sealed(sent int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sealedAll = true
	b.open += sent
	if b.open == 0 {
		close(b.done)
	}
}

// result returns the errors: messages never sent, or sent and not resolved
// when the call stopped, fail with stop.
func (b *pubBatch) result(sent int, stop error) ([]error, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.returned = true
	errs := b.errs
	failed := false
	for i := range errs {
		switch {
		case errs[i] != nil:
		case i >= sent:
			errs[i] = stop
		case stop != nil && (b.resolved == nil || !b.resolved[i]):
			errs[i] = fmt.Errorf("nats: acknowledgement not awaited: %w", stop)
		}
		if errs[i] != nil {
			failed = true
		}
	}
	return errs, failed
}

// Close stops every subscription of the Client (handlers in flight finish,
// and can still publish, and their messages are settled), waits for
// Publish and Request calls in flight, and closes the connection when Open
// made it (a connection given to New stays open). Later calls fail with
// ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.closeSubscriptions() // their handlers may still publish
	c.closeAsync()         // while publishing still works
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopWatch()
	if c.owned {
		if c.nc.IsConnected() {
			// Send the last acknowledgements before closing (not while
			// reconnecting: nothing can be sent, the flush would only
			// wait out its timeout), for at most 5s, and no longer than
			// unavailable_timeout while the server answers nothing.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			fctx, stop := c.untilSilent(ctx, time.Now())
			_ = c.nc.FlushWithContext(fctx)
			stop(nil)
			cancel()
		}
		c.nc.Close()
	}
	return nil
}

func (c *Client) closeSubscriptions() {
	_ = c.Consumer.Close()
	_ = c.serving.Close()
}

// Shutdown stops every subscription (Serve's too) and refuses new ones; see
// messaging.Shutdowner. Messages not handled when ctx ends are released to
// their group at once. The connection stays open until Close.
func (c *Client) Shutdown(ctx context.Context) error {
	err := c.Consumer.Shutdown(ctx)
	if serr := c.serving.Shutdown(ctx); err == nil {
		err = serr
	}
	return err
}

// SubscribeBatch delivers topic's messages to h in batches; see
// messaging.BatchConsumer and the package documentation. Core NATS has no
// pull: in core mode it fails with messaging.ErrUnsupported.
func (c *Client) SubscribeBatch(ctx context.Context, topic string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	if c.cfg.mode == ModeCore {
		// A closed client and bad arguments fail first, as on every call.
		if _, err := dispatch.SubscribeBatchArgs(c.Consumer.Closed(), topic, h, opts); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("nats: subscribe batch: core NATS cannot fetch batches: %w", messaging.ErrUnsupported)
	}
	return c.Consumer.SubscribeBatch(ctx, topic, h, opts...)
}

// maxHeader is the header block limit of the mode: JetStream's, or none.
func (c *Client) maxHeader() int64 {
	if c.cfg.mode == ModeCore {
		return 0
	}
	return maxStoredHeader
}
