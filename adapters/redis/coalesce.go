package redis

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
)

// maxCoalesced bounds the messages one coalesced pipeline carries.
const maxCoalesced = 1000

// coalescer merges concurrent Publish calls into shared pipelines: while
// one pipeline is on the wire, the calls that arrive wait and go together in
// the next one. See WithCoalescing.
type coalescer struct {
	c    *Client
	reqs chan *pubReq
	stop chan struct{}
	wg   sync.WaitGroup
}

// pubReq is one Publish call waiting for a pipeline.
type pubReq struct {
	topic string
	key   string
	// xadds are the messages' XADDs, made by the caller (see
	// newPubReq) with copies of the payloads: the pipeline may send them
	// after the caller gave up and handed the messages back.
	xadds   []*goredis.XAddArgs
	entered time.Time       // when msgs[0] entered: its deadline runs from then
	ctx     context.Context // the caller's: it waits no longer than this lives
	// unwanted, when not nil, says why message i is no longer to be sent
	// (PublishAsync's batches, asyncpub.Unwanted: its ctx ended, or the
	// client's Close began): such a message fails unsent when a pipeline
	// takes the request (see dropQueued).
	unwanted func(i int) error
	errs     []error
	done     chan struct{}
}

// newPubReq makes the request of a Publish attempt of msgs, the first of
// which entered at entered, within parent: the XADDs are made here, on the
// caller's goroutine, and hold copies of the payloads (encode puts the
// caller's slice in; go-redis reads it when it writes), so that the
// pipeline never reads a message after its caller stopped waiting (its ctx
// or deadline ended while the pipeline dialled, say) and was free to
// change it.
func (c *Client) newPubReq(parent context.Context, entered time.Time, topic, key, minID string, msgs []*messaging.Message, unwanted func(int) error) *pubReq {
	xadds := make([]*goredis.XAddArgs, len(msgs))
	for i, m := range msgs {
		a := c.xadd(key, m, minID)
		if vs, ok := a.Values.([]any); ok && len(vs) > 0 {
			if p, ok := vs[len(vs)-1].([]byte); ok { // the payload, last
				vs[len(vs)-1] = bytes.Clone(p)
			}
		}
		xadds[i] = a
	}
	return &pubReq{topic: topic, key: key, xadds: xadds, entered: entered, ctx: parent, unwanted: unwanted, done: make(chan struct{})}
}

func newCoalescer(c *Client, workers int) *coalescer {
	co := &coalescer{c: c, reqs: make(chan *pubReq), stop: make(chan struct{})}
	for range max(workers, 1) {
		co.wg.Go(co.loop)
	}
	return co
}

func (co *coalescer) loop() {
	var batch []*pubReq
	for {
		select {
		case r := <-co.reqs:
			batch = append(batch[:0], r)
			n := len(r.xadds)
		drain:
			for n < maxCoalesced {
				select {
				case r := <-co.reqs:
					batch = append(batch, r)
					n += len(r.xadds)
				default:
					break drain
				}
			}
			co.exec(batch)
		case <-co.stop:
			return
		}
	}
}

// exec sends a batch as one pipeline. It is not bound to any caller's
// context (the callers may stop waiting) but to the latest of their ends,
// a caller's end being its deadline (see Client.deadline) or its
// context's deadline, whichever is sooner, or its context's end before
// that: a request whose deadline passed or whose context ended while it
// waited is not sent (its caller gives up), and the pipeline ends when no
// caller waits for it any more, so a server that cannot be reached holds a
// worker, and Close, no longer than its callers, and go-redis's own
// retries of the pipeline (after a broken connection) do not send it
// again once its callers were told it failed.
func (co *coalescer) exec(batch []*pubReq) {
	now := time.Now()
	var last time.Time
	live := batch[:0] // in place: the loop makes batch anew for each pipeline
	for _, r := range batch {
		dl := co.c.deadline(r.key, r.entered)
		if err := r.ctx.Err(); err != nil || !now.Before(dl) {
			r.errs = co.failedErrs(r, cmp.Or(err, errExpiredQueued))
			close(r.done)
			continue
		}
		if co.dropQueued(r) {
			close(r.done)
			continue
		}
		if end, ok := r.ctx.Deadline(); ok && end.Before(dl) {
			dl = end
		}
		live = append(live, r)
		last = maxTime(last, dl)
	}
	if len(live) == 0 {
		return
	}
	batch = live
	ctx, cancel := context.WithDeadline(context.Background(), last)
	defer cancel()
	if cancellable(batch) { // every caller's context can end before its deadline
		waiting := atomic.Int32{}
		waiting.Store(int32(len(batch)))
		for _, r := range batch {
			stop := context.AfterFunc(r.ctx, func() {
				if waiting.Add(-1) == 0 {
					cancel()
				}
			})
			defer stop()
		}
	}
	pipe := co.c.rc.Pipeline()
	cmds := make([][]*goredis.StringCmd, len(batch))
	for i, r := range batch {
		cmds[i] = make([]*goredis.StringCmd, len(r.xadds))
		for j, a := range r.xadds {
			if r.errs != nil && r.errs[j] != nil {
				continue // dropQueued failed it
			}
			cmds[i][j] = pipe.XAdd(ctx, a)
		}
	}
	if _, err := pipe.Exec(ctx); err == nil {
		for _, r := range batch {
			co.c.replied(r.key)
		}
	}
	for i, r := range batch {
		for j, cmd := range cmds[i] {
			if cmd == nil {
				continue
			}
			if err := cmd.Err(); err != nil {
				if r.errs == nil {
					r.errs = make([]error, len(r.xadds))
				}
				r.errs[j] = co.c.opError("publish to "+r.topic, err)
			}
		}
		close(r.done)
	}
}

// cancellable reports whether the context of every request of batch can
// be cancelled (PublishAsync's cannot: its batches end at their deadlines).
func cancellable(batch []*pubReq) bool {
	for _, r := range batch {
		if r.ctx.Done() == nil {
			return false
		}
	}
	return true
}

// dropQueued fails, unsent, the messages of r no longer to be sent (see
// pubReq.unwanted), and reports whether none is left to send.
func (co *coalescer) dropQueued(r *pubReq) bool {
	if r.unwanted == nil {
		return false
	}
	left := len(r.xadds)
	for j := range r.xadds {
		err := r.unwanted(j)
		if err == nil {
			continue
		}
		if r.errs == nil {
			r.errs = make([]error, len(r.xadds))
		}
		r.errs[j] = &unsentError{err}
		left--
	}
	return left == 0
}

// unsentError is the error of a message dropQueued failed without sending
// it (again: an earlier attempt that failed may have reached the server,
// as a failure reported may always have): it says nothing of the server,
// so the others' failures alone decide whether the attempt is retried
// (see unreachable).
type unsentError struct{ err error }

func (e *unsentError) Error() string { return "redis: " + e.err.Error() }
func (e *unsentError) Unwrap() error { return e.err }

// unsent reports whether err is a message's failure unsent (see
// unsentError).
func unsent(err error) bool {
	var u *unsentError
	return errors.As(err, &u)
}

// errExpiredQueued fails a request whose deadline passed before a pipeline
// took it.
var errExpiredQueued = fmt.Errorf("%w: not sent: its unavailable timeout passed while it waited for a pipeline", messaging.ErrUnavailable)

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// publish hands r to a pipeline and waits for its result until ctx (the
// attempt's, a child of parent ending at r's deadline) ends. When it ends
// while r's pipeline is in flight and a reply to another call extended r's
// deadline meanwhile (the server is slow, not unreachable), publish waits
// on until that deadline or parent's end rather than give up on a
// pipeline that may yet succeed. Failures come as a
// *messaging.PublishError, as on the direct path.
func (co *coalescer) publish(ctx, parent context.Context, r *pubReq) error {
	select {
	case co.reqs <- r:
	case <-co.stop:
		return errClosedPublish
	case <-ctx.Done():
		return co.allFailed(r, ctx.Err())
	}
	attempt := ctx.Done()
	var extended *time.Timer // after a reply extended r's deadline
	var tick <-chan time.Time
	defer func() {
		if extended != nil {
			extended.Stop()
		}
	}()
	for {
		select {
		case <-r.done:
			if r.errs != nil {
				return &messaging.PublishError{Errs: r.errs}
			}
			return nil
		case <-attempt:
		case <-tick:
		case <-parent.Done():
		}
		dl := co.c.deadline(r.key, r.entered)
		if parent.Err() != nil || !time.Now().Before(dl) {
			// The messages may still be sent: reported as failed, they
			// can be retried (duplicates, never loss).
			return co.allFailed(r, cmp.Or(parent.Err(), ctx.Err()))
		}
		if extended == nil {
			extended = time.NewTimer(time.Until(dl))
		} else {
			extended.Reset(time.Until(dl))
		}
		attempt, tick = nil, extended.C
	}
}

// allFailed reports err for every message of r.
func (co *coalescer) allFailed(r *pubReq, err error) error {
	return &messaging.PublishError{Errs: co.failedErrs(r, err)}
}

// failedErrs returns err, as the error of each message of r.
func (co *coalescer) failedErrs(r *pubReq, err error) []error {
	err = co.c.opError("publish to "+r.topic, err)
	errs := make([]error, len(r.xadds))
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// close stops the loops after the pipelines in flight finished.
func (co *coalescer) close() {
	close(co.stop)
	co.wg.Wait()
}
