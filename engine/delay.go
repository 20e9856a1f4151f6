package engine

import (
	"container/heap"
	"sync"
	"time"
)

// delays holds nacked deliveries the broker cannot delay or redeliver, in a
// timer heap, until they are due; one goroutine per subscription fires them.
type delays struct {
	fire func(it *item, redeliver bool, err error)

	mu      sync.Mutex
	h       delayHeap
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

type delayed struct {
	due       time.Time
	it        *item
	redeliver bool
	err       error
}

func newDelays(fire func(*item, bool, error)) *delays {
	return &delays{fire: fire, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// add holds it for delay; false, when the heap is closed, means the caller
// settles it now.
func (d *delays) add(it *item, delay time.Duration, redeliver bool, err error) bool {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return false
	}
	heap.Push(&d.h, delayed{due: time.Now().Add(delay), it: it, redeliver: redeliver, err: err})
	first := d.h[0].it == it
	d.mu.Unlock()
	if first {
		d.signal()
	}
	return true
}

func (d *delays) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run fires due entries until close.
func (d *delays) run() {
	defer close(d.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		now := time.Now()
		var due []delayed
		for len(d.h) > 0 && !d.h[0].due.After(now) {
			due = append(due, heap.Pop(&d.h).(delayed))
		}
		wait := time.Hour
		if len(d.h) > 0 {
			wait = d.h[0].due.Sub(now)
		}
		d.mu.Unlock()
		for _, e := range due {
			d.fire(e.it, e.redeliver, e.err)
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// close stops run and returns what it still held, for the caller to
// settle. Later adds fail.
func (d *delays) close() []delayed {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	rest := d.h
	d.h = nil
	d.mu.Unlock()
	d.signal()
	<-d.stopped
	return rest
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*h = old[:len(old)-1]
	return e
}
