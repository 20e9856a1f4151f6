package memory

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// This file is the whole consumer side of the adapter: the driver the
// engine runs (see package driver). It is the example to copy.

// ephemeralSeq numbers the groups of group-less subscriptions;
// subscriptionSeq identifies subscriptions within groups.
var ephemeralSeq, subscriptionSeq atomic.Uint64

// memDriver opens receivers and log readers on the client's broker.
type memDriver struct{ c *Client }

var (
	_ driver.Driver    = memDriver{}
	_ driver.LogReader = memDriver{}
	_ driver.Extender  = (*receiver)(nil)
)

func (d memDriver) Capabilities() messaging.Capabilities { return d.c.Capabilities() }

// OpenReceiver creates or joins the group; from then on every published
// message reaches it.
func (d memDriver) OpenReceiver(_ context.Context, topicName string, o messaging.SubscribeOptions) (driver.Receiver, error) {
	t := d.c.b.topic(topicName)
	name, ephemeral := o.Group, o.Group == ""
	if ephemeral {
		name = ephemeralGroupName(ephemeralSeq.Add(1))
	}
	g, err := t.group(name, ephemeral, o.StartAt)
	if err != nil {
		return nil, err
	}
	t.join(g)
	return &receiver{t: t, g: g, id: subscriptionSeq.Add(1), o: o, c: d.c}, nil
}

// ephemeralGroupName names the private group of the n-th group-less
// subscription. The '#' makes it a name messaging.ValidateName rejects, so
// no user group (Provision, Subscribe with Group) can have it and be
// joined by, or share its cursor with, a group-less subscription.
func ephemeralGroupName(n uint64) string { return fmt.Sprintf("ephemeral#%d", n) }

// receiver is one subscription's membership in a group.
type receiver struct {
	t  *topic
	g  *group
	id uint64
	o  messaging.SubscribeOptions
	c  *Client

	out []driver.Delivery // what Receive returned last, reused (see driver.Receiver)
}

// Receive takes up to n due or new messages of the group, waiting for one.
func (r *receiver) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	clear(r.out) // the engine has copied them
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if r.c.killed.Load() { // a dead process fetches nothing more
			<-ctx.Done()
			return nil, ctx.Err()
		}
		ds, changed, wake, err := r.t.fetch(r.g, r.id, n, r.o.AckDeadline, r.o.MaxAttempts, r.c.cfg.logger)
		if err != nil {
			return nil, err
		}
		if len(ds) > 0 {
			out := slices.Grow(r.out[:0], len(ds))[:len(ds)]
			for i, dl := range ds {
				out[i] = driver.Delivery{Msg: dl.msg, Token: dl}
			}
			r.out = out
			return out, nil
		}
		var due <-chan time.Time
		if !wake.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(wake))
			} else {
				timer.Reset(time.Until(wake))
			}
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-due:
		case <-r.c.kill:
		}
	}
}

// Settle applies the outcomes under one lock of the topic.
func (r *receiver) Settle(_ context.Context, batch []driver.Settlement) error {
	if r.c.killed.Load() { // a dead process settles nothing
		return nil
	}
	r.t.settle(r.g, batch)
	return nil
}

// Extend pushes the ack deadline of the deliveries ds, those still this
// receiver's, back to AckDeadline from now: the engine calls it every
// AckDeadline/3 for every delivery it holds, so a message queued behind
// the subscription's others, or whose handler runs long, is not
// redelivered. A delivery settled or redelivered meanwhile is left alone
// (its token is stale), as Settle does.
func (r *receiver) Extend(_ context.Context, ds []driver.Delivery) error {
	if r.c.killed.Load() { // a dead process extends nothing: its messages expire
		return nil
	}
	r.t.extend(r.g, r.id, ds, r.o.AckDeadline)
	return nil
}

// Close leaves the group (dropping it when ephemeral).
func (r *receiver) Close(context.Context) error {
	r.t.leave(r.g)
	return nil
}

// OpenLog positions a reader of topic's log at from.
func (d memDriver) OpenLog(_ context.Context, topicName string, from messaging.Position) (driver.Log, error) {
	t := d.c.b.topic(topicName)
	t.mu.Lock()
	cur, err := t.resolve(from)
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &logReader{t: t, cur: cur}, nil
}

// logReader reads a topic's log from cur on.
type logReader struct {
	t   *topic
	cur int64
}

// Next returns up to 256 entries from the cursor on, waiting for one.
func (l *logReader) Next(ctx context.Context) ([]*messaging.Message, error) {
	for {
		t := l.t
		t.mu.Lock()
		if t.deleted {
			t.mu.Unlock()
			return nil, messaging.ErrTopicDeleted
		}
		l.cur = max(l.cur, t.base)
		var out []*messaging.Message
		for ; l.cur < t.end() && len(out) < 256; l.cur++ {
			out = append(out, t.at(l.cur).msg.Clone())
		}
		changed := t.changed
		t.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

func (l *logReader) Close() error { return nil }
