package asyncpub

import (
	"sync"
	"sync/atomic"
	"time"
)

// Deadlines keeps the rule by which a message waiting for the broker fails
// with messaging.ErrUnavailable: the unavailable timeout after it entered
// (its Publish call, or PublishAsync's queue), or after the broker last
// acknowledged a publish to the same key, whichever is later. A broker that
// is slow but answering is not unavailable: the messages queued behind its
// answers wait their turn. The key is what fails apart: a Kafka partition
// (its leader), a stream on a Redis Cluster (its shard); one key serves a
// client whose server fails as a whole.
//
// It is safe for concurrent use. Once a key has been seen, Answered and
// Deadline take no lock and allocate nothing. Forget drops keys that are
// gone (a deleted topic), so that their clocks do not outlive them.
type Deadlines[K comparable] struct {
	timeout time.Duration
	epoch   time.Time // monotonic origin of the clocks
	clocks  sync.Map  // K -> *atomic.Int64: last answer, since epoch
}

// NewDeadlines returns the deadlines of a client whose unavailable timeout
// is timeout.
func NewDeadlines[K comparable](timeout time.Duration) *Deadlines[K] {
	return &Deadlines[K]{timeout: timeout, epoch: time.Now()}
}

// Timeout returns the unavailable timeout.
func (d *Deadlines[K]) Timeout() time.Duration { return d.timeout }

func (d *Deadlines[K]) clock(key K) *atomic.Int64 {
	if v, ok := d.clocks.Load(key); ok {
		return v.(*atomic.Int64)
	}
	v, _ := d.clocks.LoadOrStore(key, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// Answered notes that the broker acknowledged a publish to key now.
func (d *Deadlines[K]) Answered(key K) {
	c := d.clock(key)
	now := max(int64(time.Since(d.epoch)), 1) // 0 is never
	for {
		last := c.Load()
		if now <= last || c.CompareAndSwap(last, now) {
			return
		}
	}
}

// Floor is the earliest deadline of any message to key: the timeout after
// the last answer for key; the zero time if none came.
func (d *Deadlines[K]) Floor(key K) time.Time {
	last := d.clock(key).Load()
	if last == 0 {
		return time.Time{}
	}
	return d.epoch.Add(time.Duration(last) + d.timeout)
}

// Deadline is when a message to key that entered at entered fails
// unacknowledged: the later of entered and key's last answer, plus the
// timeout.
func (d *Deadlines[K]) Deadline(key K, entered time.Time) time.Time {
	return Later(entered.Add(d.timeout), d.Floor(key))
}

// Forget drops the clocks of the keys for which gone returns true.
func (d *Deadlines[K]) Forget(gone func(K) bool) {
	d.clocks.Range(func(k, _ any) bool {
		if gone(k.(K)) {
			d.clocks.Delete(k)
		}
		return true
	})
}

// Later returns the later of a and b.
func Later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
