package rabbitmq

import (
	"cmp"
	"errors"
	"sync"
	"time"
)

// errAckDropped: an acknowledgement was not sent because its channel is
// gone; the broker redelivers the message.
var errAckDropped = errors.New("rabbitmq: channel closed before the acknowledgement was sent")

// Acknowledgement batching: a consumer channel's successful deliveries are
// acknowledged with basic.ack multiple=true over contiguous runs of delivery
// tags, instead of one basic.ack each.
const (
	// ackDelay bounds how long a successful delivery waits for its ack.
	ackDelay = 5 * time.Millisecond
	// ackBatchDiv: a contiguous run of prefetch/ackBatchDiv successes is
	// acknowledged at once, without waiting for ackDelay. Unsent acks hold
	// prefetch slots, so the run must stay well below the prefetch.
	ackBatchDiv = 4
)

// settler is the part of *amqp.Channel an acker uses.
type settler interface {
	Ack(tag uint64, multiple bool) error
}

// tag states in acker.state.
const (
	tagOpen    uint8 = iota // delivered (or not yet), handler not settled
	tagSuccess              // settled as ack, not yet sent
	tagSent                 // settled on the wire (nack, reject or single ack)
)

// acker settles the deliveries of one consumer channel. Contract:
//
//   - Every delivery of the channel is settled through it once, with ack
//     (batched) or with settle (anything else, sent at once, individually).
//   - A tag is acknowledged only after ack was called for it: never while its
//     handler runs, nor when it failed.
//   - basic.ack multiple=true for tag N is sent only when every tag after the
//     last one settled on the wire up to N is a success waiting for its ack,
//     so a multiple ack never covers a running, failed, nacked or delayed
//     delivery; the successes behind such a tag are acknowledged one by one
//     (see below for when).
//   - Sends are serialised under the acker's lock, so a nack reaches the
//     broker before any later multiple ack.
//   - Waiting acks are sent when the contiguous run reaches batch; when
//     2*batch successes wait behind an unsettled tag (unsent acks hold
//     prefetch slots); within delay (ackDelay) for the contiguous run and
//     two delays for successes behind an unsettled tag; and by close(true)
//     (a graceful stop flushes before closing the channel).
//   - The acker only ever sends on its own channel. Once that channel is
//     lost (a send fails) or close(false) is called, waiting acks are dropped:
//     the broker redelivers those messages (at-least-once), and delivery
//     tags mean nothing on another channel.
type acker struct {
	ch    settler
	batch int
	delay time.Duration

	mu    sync.Mutex
	base  uint64  // every tag <= base is settled on the wire
	state []uint8 // state[i] is the state of tag base+1+i
	run   int     // state[:run] are all tagSuccess
	wait  int     // number of tagSuccess in state
	timer *time.Timer
	armed bool
	// blocked is base+1 at the last tick that left successes waiting
	// behind it (that tag was unsettled).
	blocked uint64
	dead    bool
	err     error // first send error, for the log
}

// newAcker returns an acker for a channel whose QoS prefetch is prefetch,
// flushing waiting acks after delay.
func newAcker(ch settler, prefetch int, delay time.Duration) *acker {
	return &acker{ch: ch, batch: max(prefetch/ackBatchDiv, 1), delay: delay}
}

// ack records that tag's handler succeeded; its basic.ack is sent now or
// later (see the type's contract). It returns the error of a send it made,
// or an error if the channel is gone and the ack was dropped.
func (a *acker) ack(tag uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return cmp.Or(a.err, errAckDropped)
	}
	if !a.mark(tag, tagSuccess) {
		return nil
	}
	a.advance()
	if a.run >= a.batch {
		a.sendRun()
		a.advance()
	}
	if a.wait >= 2*a.batch {
		// Many successes wait behind an unsettled tag, holding prefetch
		// slots: do not let them stall the consumer.
		a.sendRun()
		a.advance()
		a.sendScattered()
	}
	if a.wait > 0 {
		a.arm()
	}
	return a.err
}

// settle sends tag's nack or reject (send) at once and records tag as
// settled. It must not be used for acks meant to be batched.
func (a *acker) settle(tag uint64, send func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := send()
	if a.dead || !a.mark(tag, tagSent) {
		return err
	}
	a.advance()
	return err
}

// gone reports whether the acker's channel is lost or the acker closed:
// nothing it settles reaches the broker any more.
func (a *acker) gone() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dead
}

// tick is the delayed flush: it sends the contiguous run; successes behind
// an unsettled tag get one more delay for it to settle (then a single
// multiple ack covers them all) before they are acknowledged one by one.
func (a *acker) tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if a.dead {
		return
	}
	a.sendRun()
	a.advance()
	if a.wait == 0 {
		return
	}
	if a.blocked == a.base+1 {
		a.sendScattered()
		return
	}
	a.blocked = a.base + 1
	a.arm()
}

// close stops the acker; with flush it first sends every waiting ack.
// Afterwards nothing is sent.
func (a *acker) close(flush bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if flush && !a.dead {
		a.sendRun()
		a.advance()
		a.sendScattered()
	}
	a.kill(nil)
	return a.err
}

// sendScattered acknowledges, one by one, the successes behind an unsettled
// tag.
func (a *acker) sendScattered() {
	for i := 0; i < len(a.state) && a.wait > 0 && !a.dead; i++ {
		if a.state[i] == tagSuccess && a.send(a.base+1+uint64(i), false) {
			a.state[i] = tagSent
			a.wait--
		}
	}
	a.advance()
}

// mark sets tag's state, growing state as needed. It reports false for a
// tag already settled on the wire.
func (a *acker) mark(tag uint64, s uint8) bool {
	if tag <= a.base {
		return false
	}
	i := int(tag - a.base - 1)
	for len(a.state) <= i {
		a.state = append(a.state, tagOpen)
	}
	if s == tagSuccess {
		a.wait++
	}
	a.state[i] = s
	for a.run < len(a.state) && a.state[a.run] == tagSuccess {
		a.run++
	}
	return true
}

// sendRun acknowledges the contiguous run of successes after base.
func (a *acker) sendRun() {
	if a.run == 0 || a.dead {
		return
	}
	n := a.run
	if a.send(a.base+uint64(n), n > 1) {
		for i := range n {
			a.state[i] = tagSent
		}
		a.wait -= n
	}
}

// advance drops the leading tags settled on the wire, and sends a run that a
// nacked tag cuts off: it cannot grow, and a multiple ack must not cover the
// nacked tag.
func (a *acker) advance() {
	for !a.dead {
		k := 0
		for k < len(a.state) && a.state[k] == tagSent {
			k++
		}
		if k > 0 {
			a.base += uint64(k)
			a.state = a.state[k:]
			a.run = 0
			for a.run < len(a.state) && a.state[a.run] == tagSuccess {
				a.run++
			}
		}
		if a.run == 0 || a.run == len(a.state) || a.state[a.run] != tagSent {
			return
		}
		a.sendRun()
	}
}

// send sends one basic.ack and reports whether it went out.
func (a *acker) send(tag uint64, multiple bool) bool {
	if err := a.ch.Ack(tag, multiple); err != nil {
		// The channel is gone: the broker redelivers what was unacknowledged.
		a.kill(err)
		return false
	}
	return true
}

// kill drops the waiting acks and makes every later call a no-op.
func (a *acker) kill(err error) {
	if a.err == nil {
		a.err = err
	}
	a.dead = true
	a.state = nil
	a.run, a.wait = 0, 0
	if a.timer != nil {
		a.timer.Stop()
	}
}

// arm schedules a flush delay from now unless one is scheduled.
func (a *acker) arm() {
	if a.armed || a.dead {
		return
	}
	a.armed = true
	if a.timer == nil {
		a.timer = time.AfterFunc(a.delay, a.tick)
		return
	}
	a.timer.Reset(a.delay)
}
