package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
)

// ErrConnectionLost is wrapped by errors caused by a lost connection: a
// Publish whose confirms did not arrive before the connection dropped, or a
// subscription ended because its connection could not be re-established.
var ErrConnectionLost = errors.New("rabbitmq: connection lost")

// connector owns the client's AMQP connection: it watches it and, when it is
// lost, dials a new one with exponential backoff until the client is closed.
// Users of the connection ask for the current one with getWatched (or
// getWithin, channelBounded) and open their channels on it; a generation
// number tells them whether the connection they used is still the current
// one.
type connector struct {
	dial   func(ctx context.Context) (*amqp.Connection, error) // nil: no redial
	guards func(*amqp.Connection) *frameGuard                  // see config.guards; nil: none
	logger *slog.Logger
	minB   time.Duration
	maxB   time.Duration

	mu      sync.Mutex
	conn    *amqp.Connection // nil while reconnecting
	watch   *blockWatch      // conn's connection.blocked state
	gen     uint64
	unavail time.Duration // the unavailable timeout: waits for a connection, Close's handshake
	ready   chan struct{} // closed when conn is set (or failed is)
	lost    chan struct{} // closed when the supervisor notices conn is lost
	lostAt  time.Time     // when a loss was last noticed, by the supervisor or a caller of getWatched
	lostGen uint64        // the generation whose loss a caller of getWatched noticed first
	first   *amqp.Connection
	owned   bool  // the client owns first (Open) rather than the caller (New)
	failed  error // the connection is gone for good
	hooks   []func(*amqp.Connection)
	closed  bool
	closing chan struct{}
	done    chan struct{}

	outlived outlived // the topics' work that outlived its call (channelBounded)
}

func newConnector(conn *amqp.Connection, owned bool, dial func(ctx context.Context) (*amqp.Connection, error), cfg config) *connector {
	c := &connector{
		first:   conn,
		owned:   owned,
		lost:    make(chan struct{}),
		dial:    dial,
		guards:  cfg.guards,
		logger:  cfg.logger,
		minB:    cfg.reconnectMin,
		maxB:    cfg.reconnectMax,
		conn:    conn,
		watch:   watchBlocked(conn, cfg.unavailable, guardOf(cfg.guards, conn)),
		gen:     1,
		unavail: cfg.unavailable,
		ready:   make(chan struct{}),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	close(c.ready)
	go c.supervise(conn)
	return c
}

// onReconnect registers f to run (in the supervisor goroutine) after every
// reconnect, before waiters are woken.
func (c *connector) onReconnect(f func(*amqp.Connection)) {
	c.mu.Lock()
	c.hooks = append(c.hooks, f)
	c.mu.Unlock()
}

// lastLoss returns when the connection was last lost (zero if never):
// when the supervisor noticed, or a caller of getWatched found it closed
// before that.
func (c *connector) lastLoss() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostAt
}

// waitDeadline is when a wait for a connection that began at from gives
// up: the unavailable timeout after from or after the connection's last
// loss (lastLoss), whichever is later. Counted from the loss when that
// came later, a call that waited behind a broker that was slow but
// confirming (PublishAsync's backlog), or whose connection was lost while
// it talked to the broker, still gets the whole timeout for the reconnect.
func (c *connector) waitDeadline(from time.Time) time.Time {
	if lost := c.lastLoss(); lost.After(from) {
		from = lost
	}
	return from.Add(c.unavail)
}

// getWithin is getWatched for a wait that began at from: it waits for a
// connection until ctx ends (ctx's error) or waitDeadline(from) has
// passed, the error then wrapping messaging.ErrUnavailable. The loss may
// become known only while waiting (the connection found closed before the
// supervisor noticed), so the deadline is taken again then.
func (c *connector) getWithin(ctx context.Context, from time.Time) (*amqp.Connection, uint64, *blockWatch, error) {
	for {
		d := c.waitDeadline(from)
		wait, cancel := context.WithDeadline(ctx, d)
		conn, gen, watch, err := c.getWatched(wait)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return conn, gen, watch, err
		}
		if c.waitDeadline(from).After(d) {
			continue // a loss noticed meanwhile: its own timeout
		}
		return nil, 0, nil, fmt.Errorf("%w: no connection within %v: %w", messaging.ErrUnavailable, c.unavail, err)
	}
}

// getWatched returns the current connection, its generation and its
// blocked state, waiting while a reconnect is under way (see getWithin for
// a bounded wait). It fails with ErrClosed after close, with
// ErrConnectionLost when no reconnect is possible, or with ctx's error.
func (c *connector) getWatched(ctx context.Context) (*amqp.Connection, uint64, *blockWatch, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, 0, nil, messaging.ErrClosed
		}
		if c.failed != nil {
			err := c.failed
			c.mu.Unlock()
			return nil, 0, nil, err
		}
		conn, gen, watch, ready, lost := c.conn, c.gen, c.watch, c.ready, c.lost
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, gen, watch, nil
		}
		wait := ready
		if conn != nil {
			// Closed, but the supervisor has not noticed yet: the loss
			// is known from now (see lastLoss).
			wait = lost
			c.mu.Lock()
			if c.conn == conn && c.lostGen != gen {
				c.lostGen, c.lostAt = gen, time.Now()
			}
			c.mu.Unlock()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, 0, nil, ctx.Err()
		case <-c.closing:
		}
	}
}

func (c *connector) supervise(conn *amqp.Connection) {
	defer close(c.done)
	for {
		lost := conn.NotifyClose(make(chan *amqp.Error, 1))
		var cause *amqp.Error
		select {
		case cause = <-lost:
		case <-c.closing:
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.conn = nil
		c.ready = make(chan struct{})
		close(c.lost)
		c.lostAt = time.Now()
		c.mu.Unlock()
		reason := "closed"
		if cause != nil {
			reason = cause.Error()
		}
		if c.dial == nil {
			c.logger.Error("rabbitmq: connection lost and no way to redial (use WithRedial with New)", "reason", reason)
			c.fail(fmt.Errorf("%w: %s (no redial configured)", ErrConnectionLost, reason))
			return
		}
		c.logger.Warn("rabbitmq: connection lost; reconnecting", "reason", reason)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = c.minB, c.maxB
		// Jitter of ±20% (backoff's default is ±50%): enough to spread
		// clients that lost the broker together, and the cap stays close
		// to the longest wait between attempts.
		b.RandomizationFactor = 0.2
		attempts := 0
		var refused error
		next, err := backoff.Retry(ctx, func() (*amqp.Connection, error) {
			attempts++
			next, err := c.dial(ctx)
			if err != nil {
				return nil, err
			}
			// As New refuses one: with amqp091's Recovery, amqp091 would
			// reopen the client's channels itself, delivery tags starting
			// again at 1, and the ackers would settle other messages.
			if next.IsRecoveryEnabled() {
				_ = next.CloseDeadline(time.Now().Add(c.unavail))
				refused = fmt.Errorf("%w: the redialled connection has amqp091 Recovery enabled (WithRedial must return connections whose Config.Recovery is nil: the client reconnects by itself): %w", ErrConnectionLost, messaging.ErrInvalidOption)
				return nil, backoff.Permanent(refused)
			}
			return next, nil
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
		cancel()
		if err != nil {
			// The client closing stops the retries, or a connection the
			// client must not use: it cannot redial then.
			if refused != nil {
				c.logger.Error("rabbitmq: redialled connection refused; not reconnecting", "error", refused)
				c.fail(refused)
			}
			return
		}
		c.mu.Lock()
		guard := guardOf(c.guards, next)
		if c.closed {
			c.mu.Unlock()
			_ = next.Close()
			return
		}
		hooks := slices.Clone(c.hooks)
		c.mu.Unlock()
		watch := watchBlocked(next, c.unavail, guard)
		for _, h := range hooks {
			h(next)
		}
		c.mu.Lock()
		if c.closed {
			// close ran during the hooks, with no connection to close.
			c.mu.Unlock()
			_ = next.CloseDeadline(time.Now().Add(c.unavail))
			return
		}
		c.conn = next
		c.watch = watch
		c.gen++
		c.lost = make(chan struct{})
		close(c.ready)
		c.mu.Unlock()
		c.logger.Info("rabbitmq: reconnected", "attempts", attempts)
		conn = next
	}
}

// guardOf is guards(conn), nil without guards.
func guardOf(guards func(*amqp.Connection) *frameGuard, conn *amqp.Connection) *frameGuard {
	if guards == nil {
		return nil
	}
	return guards(conn)
}

func (c *connector) fail(err error) {
	c.mu.Lock()
	c.failed = err
	close(c.ready)
	c.mu.Unlock()
}

// generation returns the current generation.
func (c *connector) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// gone reports whether the connection of generation gen is lost: replaced,
// being replaced, or closed and not yet noticed by the supervisor.
func (c *connector) gone(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen != gen || c.conn == nil || c.conn.IsClosed()
}

// close stops reconnecting and closes the connection, unless it is the one
// the caller gave to New.
func (c *connector) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.closed = true
	conn, watch := c.conn, c.watch
	close(c.closing)
	c.mu.Unlock()
	<-c.done
	if conn != nil && (conn != c.first || c.owned) {
		// A broker that blocked the connection reads nothing from it,
		// connection.close included: do not wait for its close-ok then, and
		// never longer than the unavailable timeout otherwise.
		deadline := time.Now().Add(c.unavail)
		if blocked, _, _, _ := watch.state(); blocked {
			deadline = time.Now()
		}
		_ = conn.CloseDeadline(deadline)
		// CloseDeadline does nothing once amqp091's own shutdown has
		// begun, and that shutdown may wait for a write stuck on a broker
		// that reads nothing: the socket is closed all the same.
		watch.cutSocket()
	}
}

// blockWatch follows one connection's connection.blocked and
// connection.unblocked notifications: RabbitMQ blocks a connection that
// publishes during a resource alarm (memory or disk), reading nothing more
// from it until the alarm clears.
//
// It also unsticks publishing: a Publish whose message does not fit in the
// socket buffers once the broker stops reading waits inside amqp091's
// write, where no bound of its own can end it. Publish counts its writes
// (started, finished); while the connection is blocked, a watchdog closes
// it once a write has been under way, with no write finishing, for the
// unavailable timeout (and the block has lasted as long). Closing the
// socket is the only way to end that write, and the connection cannot be
// used after a frame cut in the middle anyway; the client then redials.
//
// On a connection Open dialled (guard), a write that makes no progress
// while the broker sends nothing, not blocking the connection (a stalled
// link, a hung node: the socket buffers full, the connection open), is
// ended as well, whatever call made it: once the write has made no
// progress and the broker has sent nothing for the unavailable timeout,
// the connection is given up (see giveUp). Without that, the write would
// end only with the socket, which amqp091 never closes then (see
// frameGuard.cut).
type blockWatch struct {
	conn     *amqp.Connection
	unavail  time.Duration
	guard    *frameGuard      // conn's socket, if Open dialled it; nil: none
	answered func() time.Time // when the broker last sent anything on conn; nil: unknown

	now      atomic.Bool   // blocked, for the publish fast path
	started  atomic.Uint64 // publish writes begun
	finished atomic.Uint64 // publish writes ended

	mu      sync.Mutex
	blocked bool
	since   time.Time     // when the current block began
	reason  string        // the broker's, e.g. "low on memory"
	changed chan struct{} // closed at the next change
	stuck   error         // why a watchdog closed the connection
}

// watchBlocked registers for conn's blocked notifications; the watch ends
// when conn is closed (amqp091 closes the notification channel).
// unavailable bounds a stuck write (see blockWatch). guard, if not nil, is
// conn's frameGuard: its clock tells when the broker last sent anything on
// conn (see blockWatch.boundAnswers), and conn's writes are watched.
func watchBlocked(conn *amqp.Connection, unavailable time.Duration, guard *frameGuard) *blockWatch {
	w := &blockWatch{conn: conn, unavail: unavailable, changed: make(chan struct{})}
	if guard != nil && guard.clock != nil {
		w.guard, w.answered = guard, guard.clock.last
	}
	notes := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		var tick <-chan time.Time
		if w.guard != nil && w.unavail > 0 {
			t := time.NewTicker(max(w.unavail/4, time.Millisecond))
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case b, ok := <-notes:
				if !ok {
					return
				}
				w.set(b.Active, b.Reason)
			case now := <-tick:
				w.checkWrite(now)
			}
		}
	}()
	return w
}

// checkWrite gives the connection up (see blockWatch) if, at now, a write
// has made no progress and the broker has sent nothing for the
// unavailable timeout, the broker not blocking the connection (a block has
// its own bound: see watchdog).
func (w *blockWatch) checkWrite(now time.Time) {
	since := w.guard.writing()
	if since.IsZero() || now.Before(silentAt(w.answered, since, w.unavail)) || w.isBlocked() {
		return
	}
	w.mu.Lock()
	if w.stuck == nil {
		w.stuck = fmt.Errorf("%w: the broker read nothing from the connection and answered nothing on it for %v; connection closed", messaging.ErrUnavailable, w.unavail)
	}
	w.mu.Unlock()
	// Not waited for: this goroutine reads the blocked notifications,
	// which amqp091's shutdown may be sending meanwhile.
	go w.giveUp()
}

// giveUp closes the connection without waiting for the broker, which
// answers nothing or reads nothing: on a connection Open dialled, it
// closes the socket first (see frameGuard.cut), ending at once any write
// stuck in it, which amqp091's close would otherwise wait for.
func (w *blockWatch) giveUp() {
	w.cutSocket()
	_ = w.conn.CloseDeadline(time.Now())
}

// cutSocket closes the socket of a connection Open dialled (see
// frameGuard.cut); it does nothing for any other.
func (w *blockWatch) cutSocket() {
	if w != nil && w.guard != nil {
		w.guard.cut()
	}
}

func (w *blockWatch) set(blocked bool, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if blocked == w.blocked {
		return
	}
	w.blocked, w.reason = blocked, reason
	w.now.Store(blocked)
	if blocked {
		w.since = time.Now()
	}
	close(w.changed)
	w.changed = make(chan struct{})
	if blocked && w.conn != nil && w.unavail > 0 {
		go w.watchdog(w.since, reason, w.changed)
	}
}

// watchdog closes the connection when a publish write has made no
// progress for the unavailable timeout during the block that began at
// since; it ends with the block (unblocked closes changed).
func (w *blockWatch) watchdog(since time.Time, reason string, changed <-chan struct{}) {
	tick := time.NewTicker(max(w.unavail/8, time.Millisecond))
	defer tick.Stop()
	last, progress := w.finished.Load(), since
	for {
		select {
		case <-changed:
			return
		case now := <-tick.C:
			if f := w.finished.Load(); f != last {
				last, progress = f, now
				continue
			}
			if w.started.Load() == last || now.Sub(progress) < w.unavail {
				continue
			}
			w.mu.Lock()
			w.stuck = fmt.Errorf("%w: the broker blocked publishing on the connection (%s) and read nothing for %v; connection closed", messaging.ErrUnavailable, reason, w.unavail)
			w.mu.Unlock()
			w.giveUp() // ends the stuck write at once
			return
		}
	}
}

// isBlockedFast reports whether the connection is blocked, without the
// lock (Publish's per-message check).
func (w *blockWatch) isBlockedFast() bool { return w != nil && w.now.Load() }

// stuckErr returns why the watchdog closed the connection, if it did.
func (w *blockWatch) stuckErr() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stuck
}

// state returns whether the connection is blocked, since when and why, and
// a channel closed at the next change.
func (w *blockWatch) state() (blocked bool, since time.Time, reason string, changed <-chan struct{}) {
	if w == nil {
		return false, time.Time{}, "", nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blocked, w.since, w.reason, w.changed
}

// why is the broker's reason for the current block.
func (w *blockWatch) why() string {
	_, _, reason, _ := w.state()
	return reason
}

// isBlocked reports whether the connection is blocked now.
func (w *blockWatch) isBlocked() bool {
	blocked, _, _, _ := w.state()
	return blocked
}

// blockBound fails a wait on a blocked connection: once the connection has
// been blocked for limit, measured from begin or from when the block began,
// whichever is later, done is closed and err says why. Started by
// boundAnswers, it fails a wait on a silent broker too (see there);
// started by bound, an unblocked connection never ends the wait.
type blockBound struct {
	done    chan struct{}
	failing chan struct{} // closed with err set, before the connection is closed on a silent broker and before done
	err     error
	stop    chan struct{}
}

// bound starts watching; the caller calls release when its wait is over.
func (w *blockWatch) bound(begin time.Time, limit time.Duration) *blockBound {
	return w.startBound(begin, limit, time.Time{})
}

// boundAnswers is bound for a wait on the broker's answers that began at
// asked: besides a block, the wait also ends when the broker has sent
// nothing on the connection (no frame, no heartbeat) for limit, measured
// from asked or from the last thing it sent, whichever is later. A broker
// that takes the requests and answers none (a network silently dropping
// what it sends, a hung node) is thus noticed, while a slow one that
// answers each request within limit of the answer before is waited for. The
// connection is then closed (what it lost cannot be told apart from what
// is still to come), and the client redials. Without a record of the
// broker's answers (a connection given to New or WithRedial's), it is
// bound.
func (w *blockWatch) boundAnswers(asked time.Time, begin time.Time, limit time.Duration) *blockBound {
	if w == nil || w.answered == nil {
		asked = time.Time{}
	}
	return w.startBound(begin, limit, asked)
}

func (w *blockWatch) startBound(begin time.Time, limit time.Duration, asked time.Time) *blockBound {
	b := &blockBound{done: make(chan struct{}), failing: make(chan struct{}), stop: make(chan struct{})}
	go b.run(w, begin, limit, asked)
	return b
}

// run watches w for blockBound; asked is zero unless silence ends the wait
// too (boundAnswers).
func (b *blockBound) run(w *blockWatch, begin time.Time, limit time.Duration, asked time.Time) {
	for {
		blocked, since, reason, changed := w.state()
		if !blocked {
			if asked.IsZero() {
				select {
				case <-changed:
					continue
				case <-b.stop:
					return
				}
			}
			if !awaitSilence(w.answered, asked, limit, changed, b.stop) {
				select {
				case <-b.stop:
					return
				default:
					continue // changed
				}
			}
			b.err = errSilentFor(limit)
			close(b.failing)
			// Ends at once the calls still waiting on the connection; a
			// blocked one (an alarm) is not closed.
			w.giveUp()
			close(b.done)
			return
		}
		start := begin
		if since.After(start) {
			start = since
		}
		t := time.NewTimer(time.Until(start.Add(limit)))
		select {
		case <-t.C:
			b.err = fmt.Errorf("%w: the broker blocked publishing on the connection (%s) for %v", messaging.ErrUnavailable, reason, limit)
			close(b.failing)
			close(b.done)
			return
		case <-changed:
			t.Stop()
		case <-b.stop:
			t.Stop()
			return
		}
	}
}

// errSilentFor is the error of a wait given up because the broker
// answered nothing on the connection for limit.
func errSilentFor(limit time.Duration) error {
	return fmt.Errorf("%w: the broker answered nothing on the connection for %v (connection closed, to be replaced)", messaging.ErrUnavailable, limit)
}

// silentPast reports whether the broker has sent nothing on w's
// connection for limit since from or since the last thing it sent,
// whichever is later (false without a record of its answers).
func (w *blockWatch) silentPast(from time.Time, limit time.Duration) bool {
	if w == nil || w.answered == nil {
		return false
	}
	return !time.Now().Before(silentAt(w.answered, from, limit))
}

// silentSince returns when a call that began at begin has waited limit in
// silence, if the broker has sent nothing on w's connection since begin:
// begin plus limit (ok is false when it answered since, or its answers are
// unknown).
func (w *blockWatch) silentSince(begin time.Time, limit time.Duration) (at time.Time, ok bool) {
	if w == nil || w.answered == nil || w.answered().After(begin) {
		return time.Time{}, false
	}
	return begin.Add(limit), true
}

// silentAt is when a broker whose last answer last tells counts as silent
// for a wait that began at from: limit after from or after its last
// answer, whichever is later.
func silentAt(last func() time.Time, from time.Time, limit time.Duration) time.Time {
	if l := last(); l.After(from) {
		from = l
	}
	return from.Add(limit)
}

// silenceTimer ends a wait for the broker's answers (Publish's confirms)
// once the broker has sent nothing on the connection for limit since from
// or since the last thing it sent, whichever is later (silentAt): a timer,
// without a goroutine of its own, as every Publish call waits (boundAnswers
// runs one in its goroutine, through awaitSilence). A nil
// silenceTimer (no record of the broker's answers: a connection given to
// New) never fires.
type silenceTimer struct {
	t     *time.Timer
	last  func() time.Time
	from  time.Time
	limit time.Duration
}

// silentFor starts a silenceTimer for w's connection; nil without a record
// of its answers.
func (w *blockWatch) silentFor(from time.Time, limit time.Duration) *silenceTimer {
	if w == nil || w.answered == nil {
		return nil
	}
	return newSilenceTimer(w.answered, from, limit)
}

func newSilenceTimer(last func() time.Time, from time.Time, limit time.Duration) *silenceTimer {
	s := &silenceTimer{last: last, from: from, limit: limit}
	s.t = time.NewTimer(time.Until(s.deadline()))
	return s
}

func (s *silenceTimer) deadline() time.Time { return silentAt(s.last, s.from, s.limit) }

// c is the timer's channel (nil for a nil s: never ready).
func (s *silenceTimer) c() <-chan time.Time {
	if s == nil {
		return nil
	}
	return s.t.C
}

// expired, after c fired, reports whether the deadline has passed; if an
// answer moved it, the timer is set again for the new one.
func (s *silenceTimer) expired() bool {
	d := s.deadline()
	if !time.Now().Before(d) {
		return true
	}
	s.t.Reset(time.Until(d))
	return false
}

// again sets the timer for limit from now (after a block, say).
func (s *silenceTimer) again() { s.t.Reset(s.limit) }

func (s *silenceTimer) stop() {
	if s != nil {
		s.t.Stop()
	}
}

// release ends the watch.
func (b *blockBound) release() {
	if b != nil {
		close(b.stop)
	}
}

// runBoundedAnswers runs f and waits for it, for ctx to end, for the
// broker to have blocked the connection of watch for limit since the block
// began (see blockBound; f then goes on in the background, a blocked
// connection answering when the alarm clears or the connection closes), or
// for the broker to have answered nothing on the connection for limit
// since the call or since its last answer, whichever is later (the
// connection then closed; see blockWatch.boundAnswers), whichever comes
// first. The error then wraps messaging.ErrUnavailable or ctx's error.
func runBoundedAnswers(ctx context.Context, watch *blockWatch, limit time.Duration, f func() error) error {
	return runBoundedUndo(ctx, watch.boundAnswers(time.Now(), time.Time{}, limit), watch, f, nil, nil)
}

// asked is when a call bounded from begin asked the broker: begin, or now
// if begin is zero (a bound counted from a block only).
func asked(begin time.Time) time.Time {
	if begin.IsZero() {
		return time.Now()
	}
	return begin
}

// runBoundedUndo is runBoundedAnswers, bounded by bound (which it releases), that,
// when it stops waiting, runs undo (if not nil) in the background once f
// has returned nil, to release what f made for a caller that is gone. f
// hands its results over in variables the caller reads only when
// runBoundedUndo returned f's nil, and undo only after f returned. When it
// stops waiting, it also hands outlive (if not nil) a channel closed once
// f has returned, before it returns itself (see outlived).
func runBoundedUndo(ctx context.Context, bound *blockBound, watch *blockWatch, f func() error, undo func(), outlive func(done <-chan struct{})) error {
	defer bound.release()
	res := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		res <- f()
	}()
	var err error
	select {
	case err := <-res:
		if err != nil {
			select {
			case <-bound.failing:
				// The bound ended f (a silent broker's connection
				// closed): its error, not f's (a lost connection, which
				// channelBounded would wait out again).
				return bound.err
			default:
			}
		}
		return err
	case <-bound.done:
		err = bound.err
	case <-ctx.Done():
		err = ctx.Err()
		if blocked, _, reason, _ := watch.state(); blocked {
			err = fmt.Errorf("%w: the broker blocked the connection (%s): %w", messaging.ErrUnavailable, reason, err)
		}
	}
	if outlive != nil {
		outlive(finished)
	}
	if undo != nil {
		go func() {
			if <-res == nil {
				undo()
			}
		}()
	}
	return err
}

// errConnGone: the connection closed before a channel could be opened on
// it, or during a channelBounded call (channelBounded then waits for the
// next one and runs the call again).
var errConnGone = errors.New("rabbitmq: connection closed")

// channelOn opens a channel on conn, failing with errConnGone when conn is
// closed.
func channelOn(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		if conn.IsClosed() {
			return nil, errConnGone
		}
		return nil, fmt.Errorf("rabbitmq: open channel: %w", err)
	}
	return ch, nil
}

// version is the current connection's server version ("" while
// reconnecting).
func (c *connector) version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return serverVersion(c.conn)
}

// channelNow opens a channel on the current connection without waiting for
// a reconnect: with none it fails with errConnGone. It is for the further
// channels of a call running under channelBounded, which bounds the wait
// for the next connection and runs the call again on it.
func (c *connector) channelNow() (*amqp.Channel, error) {
	c.mu.Lock()
	conn, closed, failed := c.conn, c.closed, c.failed
	c.mu.Unlock()
	switch {
	case closed:
		return nil, messaging.ErrClosed
	case failed != nil:
		return nil, failed
	case conn == nil:
		return nil, errConnGone
	}
	return channelOn(conn)
}

// socketGone reports whether err is the socket failing under a connection
// that may not have noticed yet (amqp091 closes it in the background after
// a failed write).
func socketGone(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// channelBounded opens a channel on the current connection (waiting for a
// reconnect in progress until ctx ends or the unavailable timeout has
// passed since begin or since the connection was lost, whichever is later,
// the error then wrapping messaging.ErrUnavailable) and runs f with it,
// which owns the channel (closes it, or keeps it on success). f opens any
// further channel with channelNow. When the connection is lost while f
// runs, f's error is dropped and f runs again on the next connection,
// waited for as above: from the loss. f must therefore be safe to run
// again after a partial run. The broker reads nothing
// from a connection it has blocked (a resource alarm), so neither the
// channel's opening nor f's calls would be answered until the alarm
// clears, and amqp091's calls ignore ctx: channelBounded waits as
// runBoundedUndo does, until ctx ends or the block has lasted the unavailable
// timeout since begin or since the block began, whichever is later (the
// error then wraps messaging.ErrUnavailable, or is ctx's), and f goes on in
// the background, undo (if not nil) releasing what it made if it succeeds.
// It also stops waiting once the broker has sent nothing on the connection
// for the unavailable timeout since begin (now, if begin is zero) or since
// its last answer, whichever is later (see blockWatch.boundAnswers): the
// connection is closed then, f fails on it, and channelBounded fails with
// an error wrapping messaging.ErrUnavailable.
//
// topic names the topic f works on ("" for none): before f, the work
// runs waits for the work on topic that outlived its call before
// channelBounded was called (see outlived; for at most the unavailable
// timeout since begin), and channelBounded records its work as such when
// it stops waiting for it.
func (c *connector) channelBounded(ctx context.Context, begin time.Time, topic string, f func(ch *amqp.Channel, gen uint64, watch *blockWatch) error, undo func()) error {
	var outlive func(<-chan struct{})
	var pending []<-chan struct{}
	if topic != "" {
		pending = c.outlived.pending(topic, c.logger)
		outlive = func(done <-chan struct{}) { c.outlived.add(topic, done) }
	}
	after := asked(begin).Add(c.unavail)
	for {
		conn, gen, watch, err := c.getWithin(ctx, begin)
		if err != nil {
			return err
		}
		err = runBoundedUndo(ctx, watch.boundAnswers(asked(begin), begin, c.unavail), watch, func() error {
			awaitOutlived(pending, after)
			ch, err := channelOn(conn)
			if err != nil {
				return err
			}
			err = f(ch, gen, watch)
			if err != nil && !conn.IsClosed() && socketGone(err) {
				// A failed write: amqp091 closes the connection in the
				// background. (A network error may come from elsewhere
				// and the connection stay open, hence the bound.)
				// Polled: a NotifyClose listener would stay registered on a
				// connection that does not close, one per failed call.
				for end := time.Now().Add(100 * time.Millisecond); !conn.IsClosed() && time.Now().Before(end); {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if err != nil && conn.IsClosed() {
				return fmt.Errorf("%w: %w", errConnGone, err)
			}
			return err
		}, undo, outlive)
		if !errors.Is(err, errConnGone) {
			return err
		}
		// The connection died under us: wait for the next one.
	}
}
