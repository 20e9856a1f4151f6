package rabbitmq

import (
	"log/slog"
	"sync"
	"time"
)

// outlived records, per topic, broker work that went on after its call
// returned: a call stops waiting when its ctx ends, when the broker has
// blocked the connection or has been silent for the unavailable timeout
// (runBoundedUndo), and what it sent goes on in the background. Later calls
// on the same topic wait for that work first, so that each call acts
// after the ones that returned before it began: a DeleteTopic made
// after a Provision whose ctx ended deletes what that Provision declares,
// rather than running first and leaving it, and a Provision made after such
// a DeleteTopic is not deleted by it. A later call takes the list of such
// work when it begins (pending) and waits for it as the first step of its
// own bounded work (awaitOutlived).
//
// Only one client's calls are ordered so: calls in other processes, or on
// another client, are not.
type outlived struct {
	mu   sync.Mutex
	work map[string]map[<-chan struct{}]struct{} // topic -> done channels of work still running
}

// add records work on topic that outlived its call, finished when done is
// closed.
func (o *outlived) add(topic string, done <-chan struct{}) {
	o.mu.Lock()
	if o.work == nil {
		o.work = map[string]map[<-chan struct{}]struct{}{}
	}
	set := o.work[topic]
	if set == nil {
		set = map[<-chan struct{}]struct{}{}
		o.work[topic] = set
	}
	set[done] = struct{}{}
	o.mu.Unlock()
	go func() {
		<-done
		o.mu.Lock()
		delete(set, done)
		if len(o.work[topic]) == 0 {
			delete(o.work, topic)
		}
		o.mu.Unlock()
	}()
}

// pending returns the done channels of the work on topic that outlived
// its call so far, logging at debug level when there is any.
func (o *outlived) pending(topic string, logger *slog.Logger) []<-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	set := o.work[topic]
	if len(set) == 0 {
		return nil
	}
	pending := make([]<-chan struct{}, 0, len(set))
	for done := range set {
		pending = append(pending, done)
	}
	logger.Debug("rabbitmq: waiting for work on the topic that outlived its call", "topic", topic, "calls", len(pending))
	return pending
}

// awaitOutlived waits for the work of pending (see outlived.pending) to
// finish, or until deadline, after which the caller goes on: that work is
// then held up by the broker (a block, a silence), which holds up the
// caller's own work as well. It runs inside the caller's bounded work (see
// runBoundedUndo), so that the caller's ctx and the unavailable bounds
// apply to the wait as they do to the rest, and a call that stops waiting
// for it still acts after the work it waited for.
func awaitOutlived(pending []<-chan struct{}, deadline time.Time) {
	if len(pending) == 0 {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, done := range pending {
		select {
		case <-done:
		case <-t.C:
			return
		}
	}
}
