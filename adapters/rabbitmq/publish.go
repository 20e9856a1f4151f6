package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Errors a PublishError can hold for one message, besides ErrConnectionLost,
// messaging.ErrClosed and context errors.
var (
	// ErrUnroutable: the broker accepted the message but no queue was bound
	// to the topic's exchange (no group exists yet: Provision the topic and
	// its groups before publishing), so it was returned and dropped.
	ErrUnroutable = errors.New("rabbitmq: message unroutable (no queue bound to the topic; Provision its groups first)")
	// ErrNacked: the broker refused the message (a negative publisher
	// confirm, e.g. a queue at its length limit with overflow reject-publish).
	ErrNacked = errors.New("rabbitmq: message refused by the broker (nack)")
)

// maxChannelErrors bounds how often one Publish call retries after its
// channel was closed by the broker (not by a lost connection) before giving
// up: a missing exchange deleted meanwhile is re-declared once or twice, a
// persistent error is returned.
const maxChannelErrors = 3

// pubChan is a confirm-mode channel used by one Publish call at a time.
type pubChan struct {
	ch      *amqp.Channel
	conn    *amqp.Connection
	gen     uint64
	watch   *blockWatch // conn's blocked state
	returns chan amqp.Return
	closed  chan *amqp.Error

	closeOnce sync.Once // closeErr, read from closed once
	closeErr  error
}

// broken reports whether the channel can no longer be used.
func (p *pubChan) broken() bool { return p.ch.IsClosed() }

// pubPool hands out confirm-mode channels; at most size are open (and in use)
// at once.
type pubPool struct {
	conn        *connector
	unavailable time.Duration // longest wait for a connection
	sem         chan struct{}
	mu          sync.Mutex
	idle        []*pubChan
	done        bool
}

func newPubPool(conn *connector, size int, unavailable time.Duration) *pubPool {
	return &pubPool{conn: conn, unavailable: unavailable, sem: make(chan struct{}, size)}
}

// get returns a channel of the current connection, waiting for a free slot
// and for a reconnect in progress. begin is when the Publish call began,
// waitFrom when its wait for a connection did, and until (when set) when
// that wait ends at the latest (see open).
func (p *pubPool) get(ctx context.Context, begin, waitFrom, until time.Time) (*pubChan, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	gen := p.conn.generation()
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		<-p.sem
		return nil, messaging.ErrClosed
	}
	for len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if pc.gen == gen && !pc.broken() {
			p.mu.Unlock()
			return pc, nil
		}
		_ = pc.ch.Close()
	}
	p.mu.Unlock()
	pc, err := p.open(ctx, begin, waitFrom, until)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return pc, nil
}

// open opens a confirm channel, waiting for a connection until
// p.unavailable after waitFrom (the call's begin, so that a call that
// first waited for a free slot, held by calls waiting for the same
// connection, waits no longer in all, or when the connection it was
// sending on was lost) or after the connection's last loss, whichever is
// later. A wait that ends without one fails with
// messaging.ErrUnavailable. So does a connection the broker has blocked
// (a resource alarm) for p.unavailable since begin or since the block
// began, whichever is later: the broker reads nothing from it, so
// channel.open would wait for the alarm to clear.
//
// The wait for a connection also ends at until, when set, and when the
// connection is found closed for a silence that began before the call
// (closed by another call, whose timeout began sooner), at this call's own
// timeout (blockWatch.silentSince): a call that has waited in silence
// since it began fails then with the silence's error, rather than wait the
// whole timeout again for a new connection.
func (p *pubPool) open(ctx context.Context, begin, waitFrom, until time.Time) (*pubChan, error) {
	// Counted from the connection's loss if that came later (see
	// connector.waitDeadline).
	unavailable := func(err error) error {
		return fmt.Errorf("%w: no connection within %v: %w", messaging.ErrUnavailable, p.unavailable, err)
	}
	for {
		conn, gen, watch, err := p.getWithinUntil(ctx, waitFrom, until)
		if err != nil {
			if errors.Is(err, messaging.ErrUnavailable) {
				return nil, err
			}
			// ctx's end, and the client closed (or unable to redial)
			// while waiting, are said as ErrUnavailable too.
			return nil, unavailable(err)
		}
		ch, err := p.openOn(ctx, conn, watch, begin)
		if err != nil && (errors.Is(err, messaging.ErrUnavailable) || ctx.Err() != nil) {
			if ch != nil {
				go ch.Close() // see put
			}
			return nil, fmt.Errorf("rabbitmq: open publish channel: %w", err)
		}
		if err != nil {
			if ch != nil {
				_ = ch.Close()
			}
			if conn.IsClosed() {
				if watch.silentPast(begin, p.unavailable) {
					// Closed for a silence this call waited through too
					// (another call noticed it first): not a further
					// wait for the reconnect.
					return nil, fmt.Errorf("rabbitmq: open publish channel: %w", errSilentFor(p.unavailable))
				}
				if at, ok := watch.silentSince(begin, p.unavailable); ok {
					until = at // see above
				}
				continue // wait for the reconnect
			}
			if socketGone(err) {
				// The socket is gone but the connection has not noticed
				// yet: give it a moment, then wait for the reconnect.
				if time.Until(p.conn.waitDeadline(waitFrom)) <= 0 {
					return nil, unavailable(err)
				}
				select {
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			return nil, fmt.Errorf("rabbitmq: open publish channel: %w", err)
		}
		pc := &pubChan{ch: ch, conn: conn, gen: gen, watch: watch}
		// Returns are read only by the Publish call holding the channel; the
		// buffer absorbs the ones that arrive while it is still sending.
		pc.returns = ch.NotifyReturn(make(chan amqp.Return, 1024))
		pc.closed = ch.NotifyClose(make(chan *amqp.Error, 1))
		return pc, nil
	}
}

// getWithinUntil is conn.getWithin, ended at until too (when set), then
// failing with the silence's error (see open).
func (p *pubPool) getWithinUntil(ctx context.Context, waitFrom, until time.Time) (*amqp.Connection, uint64, *blockWatch, error) {
	if until.IsZero() {
		return p.conn.getWithin(ctx, waitFrom)
	}
	wait, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	conn, gen, watch, err := p.conn.getWithin(wait, waitFrom)
	if err != nil && ctx.Err() == nil && wait.Err() != nil {
		err = fmt.Errorf("rabbitmq: waiting for a connection: %w", errSilentFor(p.unavailable))
	}
	return conn, gen, watch, err
}

// openOn opens a confirm channel on conn, unless the broker has blocked
// conn for p.unavailable (since begin or the block, whichever is later) or
// answered nothing on it for p.unavailable (since begin or its last
// answer: boundAnswers, which then closes conn); a ctx that ends first
// ends the wait too (messaging.ErrUnavailable wrapping ctx's error, as
// open's other waits say it).
func (p *pubPool) openOn(ctx context.Context, conn *amqp.Connection, watch *blockWatch, begin time.Time) (*amqp.Channel, error) {
	bound := watch.boundAnswers(begin, begin, p.unavailable)
	defer bound.release()
	// Do not start a handshake the broker will not read.
	for {
		blocked, _, _, changed := watch.state()
		if !blocked {
			break
		}
		select {
		case <-changed:
		case <-bound.done:
			return nil, bound.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the broker blocked publishing (%s): %w", messaging.ErrUnavailable, watch.why(), ctx.Err())
		}
	}
	type opened struct {
		ch  *amqp.Channel
		err error
	}
	res := make(chan opened, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		res <- opened{ch, err}
	}()
	abandon := func() {
		// The handshake ends when the broker answers (an alarm cleared)
		// or the connection closes; its channel, unused, is closed.
		go func() {
			if r := <-res; r.ch != nil {
				_ = r.ch.Close()
			}
		}()
	}
	select {
	case r := <-res:
		if r.err != nil {
			select {
			case <-bound.failing:
				// The bound gave up first and closed the connection,
				// failing the handshake: its error says why.
				return nil, bound.err
			default:
			}
		}
		return r.ch, r.err
	case <-bound.done: // blocked or silent meanwhile
		abandon()
		return nil, bound.err
	case <-ctx.Done():
		abandon()
		return nil, fmt.Errorf("%w: no answer to channel.open: %w", messaging.ErrUnavailable, ctx.Err())
	}
}

// put gives pc back; a broken or abandoned channel is closed instead, in
// the background: a blocked connection (a resource alarm) would not answer
// channel.close until the alarm clears. The returns of an abandoned
// channel are read until it is closed: the broker may still return
// messages written on it, and amqp091-go hands each one over from the
// connection's reader, which a full, unread buffer stalls (for 5s a
// return), holding up every call on the connection.
func (p *pubPool) put(pc *pubChan, reuse bool) {
	p.mu.Lock()
	if reuse && !p.done && !pc.broken() {
		p.idle = append(p.idle, pc)
		pc = nil
	}
	p.mu.Unlock()
	if pc != nil {
		go func() {
			for range pc.returns { // closed with the channel
			}
		}()
		go pc.ch.Close()
	}
	<-p.sem
}

func (p *pubPool) close() {
	p.mu.Lock()
	p.done = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		if pc.watch.isBlocked() {
			go pc.ch.Close() // see put
			continue
		}
		_ = pc.ch.Close()
	}
}

// outgoing is one message of a Publish call, converted.
type outgoing struct {
	exchange string
	key      string
	pub      amqp.Publishing
}

// Publish sends msgs to topic's exchange (declaring it, durable, when this
// client has not yet done so on its current connection) with publisher
// confirms, all in flight at once on one channel, and returns when every
// message is confirmed; see messaging.Publisher. The routing key is the
// message Key; messages no queue receives fail with ErrUnroutable. Messages
// whose confirm was lost with the connection are sent again on the next
// connection (which can duplicate, never lose). While the broker is
// unreachable Publish waits for a connection up to unavailable_timeout (5s)
// from the call (its wait for one of the client's publish channels
// included) or from the loss of the connection it was sending on, or until
// ctx ends, then fails what is not confirmed with an error wrapping
// messaging.ErrUnavailable. So it does when the broker blocks publishing
// on the connection (a memory or disk alarm: connection.blocked) for
// unavailable_timeout, counted from the call or the block, whichever
// began later; the error gives the broker's reason, and a message failed so
// may still be confirmed later. A message write the blocked broker leaves
// unread (a burst larger than the socket buffers) ends the same way: the
// client closes the connection (the only way to end the write) and
// redials. A broker that takes the messages and answers nothing on the
// connection for unavailable_timeout (counted from the call or its last
// answer, whichever is later) fails them so too, and the connection is
// replaced, as does one that reads nothing and answers nothing while a
// write on the connection makes no progress for unavailable_timeout (a
// stalled link: the socket is closed, ending the write); one that
// answers, however slowly, is waited for as long as ctx allows (a
// connection given to New: always, the client cannot see its answers). Messages with the same Key keep their order (one channel, sent
// in order).
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*messaging.Message) error {
	return c.publish(ctx, time.Now(), topic, msgs, nil, nil)
}

// publish is Publish for a call that began at begin: the unavailable
// timeout runs from then (PublishAsync: when the batch's first message was
// queued). unwanted, when not nil, says why message i is no longer to be
// sent (PublishAsync: its ctx ended, or the client is closing; see
// asyncpub.Unwanted): checked before each attempt, once a channel is at
// hand, it fails the message with that error, unsent. stop, when not nil,
// ends the waits before a message is written (for a connection, a
// channel, the topic's declaration, a block's end) when it closes
// (PublishAsync: the client's Close began; see asyncpub.Closing), the
// messages not written then failing with unwanted's errors.
func (c *Client) publish(ctx context.Context, begin time.Time, topic string, msgs []*messaging.Message, unwanted func(i int) error, stop <-chan struct{}) error {
	if c.closed.Load() {
		return fmt.Errorf("rabbitmq: publish: %w", messaging.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rabbitmq: publish: %w", err)
	}
	if err := driver.PreparePublish(topic, msgs, c.cfg.maxMessageSize); err != nil {
		return err
	}
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("rabbitmq: publish: topic: %w", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	out := make([]outgoing, len(msgs))
	for i, m := range msgs {
		p, err := publishing(m)
		if err == nil {
			err = checkFrame(p, c.frameMax)
		}
		if err != nil {
			return fmt.Errorf("rabbitmq: publish to %s: %s%w", topic, driver.Nth(i, len(msgs)), err)
		}
		out[i] = outgoing{exchange: topic, key: m.Key, pub: p}
	}
	errs := make([]error, len(msgs))
	if err := c.send(ctx, begin, topic, out, errs, unwanted, stop); err != nil {
		return fmt.Errorf("rabbitmq: publish to %s: %w", topic, err)
	}
	for _, err := range errs {
		if err != nil {
			return &messaging.PublishError{Errs: errs}
		}
	}
	return nil
}

// send publishes out, filling errs, retrying what a lost connection left
// unconfirmed. ensure declares what must exist on a fresh connection; topic
// empty skips it. begin is when the call began, from which the unavailable
// timeout runs (see Publish). check, when not nil, runs for each message
// pending before each attempt, once a channel is at hand and the topic
// declared (after any wait for them), and after a wait for a block to end
// (see sendOn): an error from it fails that message with that error,
// unsent, and the others are sent. stop, when not nil, ends those waits
// when it closes: the messages not written then fail with check's errors.
// The returned error is for failures before anything could be attempted.
func (c *Client) send(ctx context.Context, begin time.Time, topic string, out []outgoing, errs []error, check func(i int) error, stop <-chan struct{}) error {
	pending := make([]int, len(out))
	for i := range pending {
		pending[i] = i
	}
	getCtx := ctx // for the waits before an attempt
	if stop != nil {
		var cancel context.CancelFunc
		getCtx, cancel = stoppable(ctx, stop)
		defer cancel()
	}
	channelErrors := 0
	isolate := false  // send one message per attempt (see refusesMessage)
	waitFrom := begin // the start of the current wait for a connection
	// waitUntil, when set, ends the wait for a new connection after a
	// loss the call waited through in silence (see pubPool.open).
	var waitUntil time.Time
	// fail fails what is pending with err, or with check's errors
	// once stop has closed (the wait err ended was cut short by it).
	fail := func(err error) {
		stopped := stop != nil && check != nil && isClosed(stop)
		for _, i := range pending {
			errs[i] = err
			if stopped {
				if e := check(i); e != nil {
					errs[i] = e
				}
			}
		}
	}
	for len(pending) > 0 {
		pc, err := c.pool.get(getCtx, begin, waitFrom, waitUntil)
		if err != nil {
			fail(err)
			return nil
		}
		if topic != "" {
			// Before anything is written: stop ends the wait too.
			if err := c.ensureTopicOn(getCtx, pc, begin, topic); err != nil {
				lostConn := pc.conn.IsClosed()
				c.pool.put(pc, false)
				if lostConn && getCtx.Err() == nil {
					waitFrom = time.Now()
					continue
				}
				fail(err)
				return nil
			}
		}
		if check != nil {
			// The turn to be sent has come (after any wait for a
			// connection, a channel or the topic's declaration).
			kept := pending[:0]
			for _, i := range pending {
				if err := check(i); err != nil {
					errs[i] = err
				} else {
					kept = append(kept, i)
				}
			}
			if pending = kept; len(pending) == 0 {
				c.pool.put(pc, true)
				return nil
			}
		}
		batch, untried := pending, []int(nil)
		if isolate {
			batch, untried = pending[:1], pending[1:]
		}
		retry, reuse := c.sendOn(ctx, pc, begin, out, batch, errs, check, stop)
		lostConn := pc.conn.IsClosed()
		c.pool.put(pc, reuse)
		if len(retry) == 0 {
			if len(untried) == 0 {
				return nil
			}
			pending = untried
			continue
		}
		if stuck := pc.watch.stuckErr(); stuck != nil {
			// Closed because the broker read nothing for the unavailable
			// timeout: not resent (see blockWatch).
			for _, i := range append(retry, untried...) {
				errs[i] = fmt.Errorf("rabbitmq: not confirmed: %w", stuck)
			}
			return nil
		}
		// Nothing from the broker since the call began: the channel was
		// lost to a silence (the connection closed for it, which may not
		// be known here yet), which the retry must not wait through again.
		waitUntil, _ = pc.watch.silentSince(begin, c.cfg.unavailable)
		var chErr error // why the broker closed the channel
		switch {
		case lostConn:
			waitFrom = time.Now()
		case len(batch) == 1 && retry[0] == batch[0] && refusesMessage(pc.closedBy()):
			// The broker closed the channel at the one message sent: it
			// refuses that message (larger than its max_message_size...),
			// which fails alone, with the broker's reason.
			errs[batch[0]] = refusedErr(pc.closedBy())
			retry, isolate = retry[1:], false
		default:
			// The broker closed the channel (e.g. the exchange was deleted
			// meanwhile): forget the declaration and try again, a few times.
			c.declared.Delete(topic)
			chErr = pc.closedBy()
			if refusesMessage(chErr) && len(retry)+len(untried) > 1 {
				// It refused one of the messages sent, or the first of
				// those not sent: send them one at a time until it refuses
				// one again, which then fails alone (those before it,
				// which the broker may have taken, are sent again: at
				// least once).
				isolate = true
			} else {
				channelErrors++
			}
		}
		retry = append(retry, untried...)
		if len(retry) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil || channelErrors > maxChannelErrors || c.closed.Load() {
			cause := ErrConnectionLost
			if err != nil {
				cause = err
			} else if c.closed.Load() {
				cause = messaging.ErrClosed
			} else if chErr != nil {
				cause = fmt.Errorf("rabbitmq: channel closed by broker: %w", chErr)
			}
			for _, i := range retry {
				errs[i] = fmt.Errorf("rabbitmq: not confirmed: %w", cause)
			}
			return nil
		}
		c.cfg.logger.Debug("rabbitmq: resending unconfirmed messages", "topic", topic, "count", len(retry))
		pending = retry
	}
	return nil
}

// stoppable returns a context derived from ctx that is also cancelled
// when stop closes.
func stoppable(ctx context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-sctx.Done():
		}
	}()
	return sctx, cancel
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// closedBy returns why the broker closed pc's channel, if it said (nil
// for a channel still open or lost with its connection).
func (p *pubChan) closedBy() error {
	p.closeOnce.Do(func() {
		select {
		case e, ok := <-p.closed:
			if ok && e != nil {
				p.closeErr = e
			}
		default:
		}
	})
	return p.closeErr
}

// refusesMessage reports whether err, the broker's reason for closing a
// publish channel, is one it gives for a message it refuses
// (PRECONDITION_FAILED: a message larger than its max_message_size, which
// AMQP does not tell the client; an invalid property or header), rather
// than for the channel's state (NOT_FOUND: the exchange was deleted
// meanwhile, and is declared again).
func refusesMessage(err error) bool { return isCode(err, amqp.PreconditionFailed) }

// refusedErr is the failure of a message the broker refused (see
// refusesMessage): wrapping messaging.ErrMessageTooLarge when it says the
// message exceeds its max_message_size.
func refusedErr(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && strings.Contains(ae.Reason, "larger than configured max size") {
		return fmt.Errorf("rabbitmq: refused by the broker: %w: %w", messaging.ErrMessageTooLarge, err)
	}
	return fmt.Errorf("rabbitmq: refused by the broker: %w", err)
}

// ensureTopicOn is ensureTopic on pc's channel, given up with
// messaging.ErrUnavailable when the broker blocks the connection (see
// blockBound); the declaration goes on in the background.
func (c *Client) ensureTopicOn(ctx context.Context, pc *pubChan, begin time.Time, topic string) error {
	if g, ok := c.declared.Load(topic); ok && g.(uint64) == pc.gen {
		return nil
	}
	// After the topic's work that outlived its call (see outlived).
	pending := c.conn.outlived.pending(topic, c.cfg.logger)
	// Bounded on a silent broker too (boundAnswers), from the call.
	err := runBoundedUndo(ctx, pc.watch.boundAnswers(begin, begin, c.cfg.unavailable), pc.watch, func() error {
		awaitOutlived(pending, begin.Add(c.cfg.unavailable))
		return c.ensureTopic(ctx, pc.ch, pc.gen, topic)
	}, nil, func(done <-chan struct{}) { c.conn.outlived.add(topic, done) })
	if err != nil && errors.Is(err, messaging.ErrUnavailable) {
		return fmt.Errorf("rabbitmq: declare topic %q: %w", topic, err)
	}
	return err
}

// sendOn publishes out[idx...] on pc and waits for their confirms. It sets
// errs for returned and nacked messages and returns the indexes to send
// again (their channel was lost before they were confirmed) and whether pc
// can be reused. begin is when the Publish call began: while the broker
// blocks the connection (a resource alarm), sending waits for the block to
// end, and once it has lasted the unavailable timeout (from begin or from
// when the block began, whichever is later) the messages not confirmed
// fail with messaging.ErrUnavailable and pc is abandoned, as when ctx ends.
// check (see send), when not nil, runs for each message still to write
// after such a wait: a message it fails is not written. stop (see send)
// ends such a wait: the messages not written then fail with check's
// errors, and those written are waited for as before.
func (c *Client) sendOn(ctx context.Context, pc *pubChan, begin time.Time, out []outgoing, idx []int, errs []error, check func(i int) error, stop <-chan struct{}) (retry []int, reuse bool) {
	var bound *blockBound // started by the first wait
	boundOf := func() *blockBound {
		if bound == nil {
			bound = pc.watch.bound(begin, c.cfg.unavailable)
		}
		return bound
	}
	defer func() { bound.release() }()
	dcs := make([]*amqp.DeferredConfirmation, 0, len(idx))
	written := make([]int, 0, len(idx)) // the messages of dcs
	sent := 0                           // len(written)
	stopAt := len(idx)                  // idx[stopAt:] were not tried
	nacked := false
	// Returned messages are matched by message ID, exchange and routing key
	// (messages with one ID may be routed differently): a return settles
	// the first message sent with them that no return settled yet. The
	// broker returns in publish order, so the search starts after the last
	// match.
	var returned map[int]bool
	next := 0 // position in written after the last returned message
	onReturn := func(r amqp.Return) {
		for k := range sent {
			p := (next + k) % sent
			i := written[p]
			if o := &out[i]; o.pub.MessageId == r.MessageId && o.key == r.RoutingKey && o.exchange == r.Exchange && !returned[i] {
				if returned == nil {
					returned = make(map[int]bool)
				}
				returned[i] = true
				next = p + 1
				errs[i] = fmt.Errorf("%w (exchange %q, routing key %q: %s)", ErrUnroutable, r.Exchange, r.RoutingKey, r.ReplyText)
				return
			}
		}
	}
	drain := func() {
		for {
			select {
			case r, ok := <-pc.returns:
				if !ok {
					return
				}
				onReturn(r)
			default:
				return
			}
		}
	}
	var sendFailed error // why sending stopped early, if it did
	waited := false      // for a block to end
	for p, i := range idx {
		if pc.watch.isBlockedFast() {
			if sendFailed = awaitUnblocked(ctx, pc.watch, boundOf, stop); sendFailed == errStopped && check != nil {
				// None of the rest is written (Close began).
				for _, j := range idx[p:] {
					if errs[j] = check(j); errs[j] == nil {
						errs[j] = fmt.Errorf("rabbitmq: not sent: %w", messaging.ErrClosed)
					}
				}
				sendFailed = nil
				break
			}
			if sendFailed != nil {
				stopAt = p
				break
			}
			waited = true
		}
		if waited && check != nil {
			// Its turn to be sent came only now.
			if err := check(i); err != nil {
				errs[i] = err
				continue
			}
		}
		o := &out[i]
		// Counted for the watchdog that ends a write stuck under a block.
		pc.watch.started.Add(1)
		dc, err := pc.ch.PublishWithDeferredConfirm(o.exchange, o.key, true, false, o.pub)
		pc.watch.finished.Add(1)
		if err != nil {
			if stuck := pc.watch.stuckErr(); stuck != nil {
				sendFailed = fmt.Errorf("rabbitmq: not sent: %w", stuck)
			} else if pc.watch.silentPast(begin, c.cfg.unavailable) {
				// Another call gave the connection up for a silence
				// this write waited through too: it fails as it would
				// have here, not resent after a further wait for a
				// connection (as a confirm below).
				sendFailed = fmt.Errorf("rabbitmq: not sent: %w", errSilentFor(c.cfg.unavailable))
			}
			stopAt = p
			break
		}
		dcs = append(dcs, dc)
		written = append(written, i)
		sent++
		if len(pc.returns) > 0 {
			drain()
		}
	}
	returns := pc.returns
	// A broker that takes the messages and answers nothing: made at the
	// first confirm not already in (see silentFor).
	var silent *silenceTimer
	defer func() { silent.stop() }()
	for k, dc := range dcs {
		i := written[k]
		if sendFailed != nil {
			// Take the answers already in, wait for no more.
			select {
			case <-dc.Done():
			default:
				if errs[i] == nil {
					errs[i] = sendFailed
				}
				continue
			}
		}
		var failed error
		select {
		case <-dc.Done():
		default:
		wait:
			for {
				// The block's bound runs only while the broker blocks the
				// connection: an unblocked wait costs no goroutine.
				blocked, _, _, changed := pc.watch.state()
				var boundDone <-chan struct{}
				if blocked {
					boundDone = boundOf().done
				}
				if silent == nil {
					silent = pc.watch.silentFor(begin, c.cfg.unavailable)
				}
				select {
				case <-dc.Done():
					break wait
				case r, ok := <-returns:
					if !ok {
						returns = nil
						continue
					}
					onReturn(r)
				case <-changed:
				case <-ctx.Done():
					failed = fmt.Errorf("rabbitmq: waiting for confirm: %w", ctx.Err())
					break wait
				case <-boundDone:
					failed = fmt.Errorf("rabbitmq: not confirmed: %w", bound.err)
					break wait
				case <-silent.c():
					if !silent.expired() {
						continue // an answer moved the deadline
					}
					if blocked, _, _, _ := pc.watch.state(); blocked {
						silent.again() // a block has its own bound
						continue
					}
					failed = fmt.Errorf("rabbitmq: not confirmed: %w", errSilentFor(c.cfg.unavailable))
					pc.watch.giveUp()
					break wait
				}
			}
		}
		if failed != nil {
			// Abandon the channel: confirms still due would arrive with
			// nobody reading them. A message failed here may still be
			// confirmed (at least once: a retry can duplicate); one the
			// broker returned already has its answer.
			drain()
			for _, j := range slices.Concat(written[k:], idx[stopAt:]) {
				if errs[j] == nil {
					errs[j] = failed
				}
			}
			return nil, false
		}
		if dc.Acked() {
			continue
		}
		if pc.broken() {
			if pc.watch.silentPast(begin, c.cfg.unavailable) {
				// The connection was closed for a silence this message
				// waited through too (another call noticed it first):
				// it fails as it would have here, not resent after a
				// further wait for a connection.
				errs[i] = fmt.Errorf("rabbitmq: not confirmed: %w", errSilentFor(c.cfg.unavailable))
				continue
			}
			retry = append(retry, i)
			continue
		}
		errs[i] = ErrNacked
		nacked = true
	}
	if sendFailed != nil {
		// Sending stopped: the messages not sent, or sent and lost with the
		// channel, fail too (a returned one has its answer); pc is abandoned.
		drain()
		for _, j := range append(retry, idx[stopAt:]...) {
			if errs[j] == nil {
				errs[j] = sendFailed
			}
		}
		return nil, false
	}
	drain()
	// A message returned before its channel broke has a definite answer.
	retry = filterOut(retry, returned)
	retry = append(retry, idx[stopAt:]...)
	// A channel that got a nack is not reused: on RabbitMQ 3.10 a channel
	// that published to a quorum queue while the queue had no leader (its
	// node was killed) goes on nacking every message for that queue after
	// the new leader is elected, while a new channel on the same
	// connection is acknowledged (seen in TestFailoverQueueLeader).
	return retry, len(retry) == 0 && !nacked
}

// errStopped is awaitUnblocked's error when stop closed.
var errStopped = fmt.Errorf("rabbitmq: stopped waiting to send: %w", messaging.ErrClosed)

// awaitUnblocked waits while the broker blocks the connection of watch,
// until the block ends (nil), ctx ends, stop closes (errStopped; nil stop:
// never) or the block has lasted the unavailable timeout (boundOf's; the
// error says which).
func awaitUnblocked(ctx context.Context, watch *blockWatch, boundOf func() *blockBound, stop <-chan struct{}) error {
	for {
		blocked, _, _, changed := watch.state()
		if !blocked {
			return nil
		}
		b := boundOf()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("rabbitmq: waiting to send: %w: the broker blocked publishing (%s): %w", messaging.ErrUnavailable, watch.why(), ctx.Err())
		case <-b.done:
			return fmt.Errorf("rabbitmq: not sent: %w", b.err)
		case <-stop:
			return errStopped
		}
	}
}

func filterOut(idx []int, drop map[int]bool) []int {
	out := idx[:0]
	for _, i := range idx {
		if !drop[i] {
			out = append(out, i)
		}
	}
	return out
}
