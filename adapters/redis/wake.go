package redis

import (
	"context"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// Hand-over between members: a member that nacks or releases entries while
// its group has other members (consumers seen lately, see claimOwnScript)
// publishes on the group's wake channel (in claimOwnScript, with the
// claim), and every member of the group that listens, in any process,
// reclaims at once instead of at its next periodic reclaim (up to a
// reclaim period later, 1s by default). Pub/Sub delivers at
// most once: a wake lost (a reconnect, a member subscribing at that moment,
// an ACL without PUBLISH or SUBSCRIBE) costs what it saves, the wait for
// the periodic reclaim.

// wakeChannel is the Pub/Sub channel of the group of the stream at key.
func wakeChannel(key, group string) string { return "msgkit:wake:" + key + ":" + group }

// waker listens on the wake channels of a client's group subscriptions, on
// one Pub/Sub connection opened with the first of them.
type waker struct {
	c *Client
	// subMu serialises add and remove, which talk to the server outside
	// mu: a slow SUBSCRIBE or UNSUBSCRIBE holds up no wake being handed
	// out (run takes mu only).
	subMu  sync.Mutex
	mu     sync.Mutex
	ps     *goredis.PubSub
	subs   map[string]map[*groupReceiver]struct{} // by channel
	closed bool
}

// add makes r listen on its group's wake channel.
func (w *waker) add(ctx context.Context, r *groupReceiver) {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if w.ps == nil {
		w.ps = w.c.rc.Subscribe(context.WithoutCancel(ctx)) // connects with the first channel
		w.subs = map[string]map[*groupReceiver]struct{}{}
		go w.run(w.ps.Channel())
	}
	ps := w.ps
	set := w.subs[r.wakeChannel]
	first := set == nil
	if first {
		set = map[*groupReceiver]struct{}{}
		w.subs[r.wakeChannel] = set
	}
	set[r] = struct{}{}
	w.mu.Unlock()
	if first {
		// go-redis subscribes again after a reconnect; an error here (the
		// server unreachable, an ACL, the client closing) only costs the
		// prompt hand-over.
		if err := ps.Subscribe(ctx, r.wakeChannel); err != nil {
			w.c.cfg.logger.Debug("redis: listening for hand-overs failed; the group's periodic reclaim takes them", "topic", r.topic, "group", r.group, "error", err)
		}
	}
}

// remove stops r listening.
func (w *waker) remove(ctx context.Context, r *groupReceiver) {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	w.mu.Lock()
	set := w.subs[r.wakeChannel]
	if set == nil {
		w.mu.Unlock()
		return
	}
	delete(set, r)
	last := len(set) == 0 && !w.closed
	if last {
		delete(w.subs, r.wakeChannel)
	}
	ps := w.ps
	w.mu.Unlock()
	if last {
		_ = ps.Unsubscribe(ctx, r.wakeChannel)
	}
}

// run wakes the listeners of each message's channel but its sender (the
// payload is the sending consumer's name).
func (w *waker) run(msgs <-chan *goredis.Message) {
	for m := range msgs {
		w.mu.Lock()
		for r := range w.subs[m.Channel] {
			if r.consumer != m.Payload {
				r.reclaimSoon()
			}
		}
		w.mu.Unlock()
	}
}

// close closes the Pub/Sub connection.
func (w *waker) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.ps != nil {
		_ = w.ps.Close()
	}
}
