package memory

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

var (
	_ messaging.Inspector   = (*Client)(nil)
	_ messaging.TopicLister = (*Client)(nil)
)

// Inspect reports topic's state from the broker's own (every client of the
// broker sees the same); every figure is known:
//   - Messages, Bytes: the retained messages and the sum of their
//     Message.Size; First and Last their offsets.
//   - Backlog: messages the group has not been handed yet, plus those
//     settled with a nack or release and waiting to be redelivered.
//   - InFlight: messages handed to a subscription and not settled yet
//     (including those past their ack deadline, until they are redelivered).
//   - OldestAge: time since the oldest of the backlog was published (0 when
//     the backlog is empty).
//   - Redeliveries: deliveries with Message.Attempt > 1 since the group was
//     created (a count that never decreases).
//   - Consumers: the group's live subscriptions, in every client.
//
// Groups are the named ones, including provisioned groups that never
// consumed; the private group of a subscription without Group is not
// listed. The figures are taken under one lock of the topic, so they are
// consistent with each other. Inspect fails with ErrInvalidTopic for a bad
// name, ErrTopicNotFound for a topic nothing has published to, subscribed
// to or provisioned (or that was deleted since), and ErrClosed after Close.
func (c *Client) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "inspect", topic); err != nil {
		return messaging.TopicStats{}, err
	}
	c.b.mu.Lock()
	t := c.b.topics[topic]
	c.b.mu.Unlock()
	if t == nil {
		return messaging.TopicStats{}, fmt.Errorf("memory: inspect %q: %w", topic, messaging.ErrTopicNotFound)
	}
	return t.stats(time.Now()), nil
}

// stats is the topic's state at now.
func (t *topic) stats(now time.Time) messaging.TopicStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := messaging.TopicStats{
		Topic:    t.name,
		Broker:   "mem",
		Messages: messaging.KnownCount(int64(len(t.log))),
		Bytes:    messaging.KnownCount(t.bytes),
		Groups:   []messaging.GroupStats{},
	}
	if len(t.log) > 0 {
		st.First = strconv.FormatInt(t.base, 10)
		st.Last = strconv.FormatInt(t.end()-1, 10)
	}
	for _, g := range t.groups {
		if g.ephemeral {
			continue
		}
		backlog, inFlight := t.end()-g.cursor, int64(0)
		var oldest time.Time
		if e := t.at(g.cursor); e != nil {
			oldest = e.appended
		}
		for _, p := range g.pending {
			if p.inFlight {
				inFlight++
				continue
			}
			backlog++
			if oldest.IsZero() || p.e.appended.Before(oldest) {
				oldest = p.e.appended
			}
		}
		age := time.Duration(0)
		if !oldest.IsZero() {
			age = max(now.Sub(oldest), 0)
		}
		st.Groups = append(st.Groups, messaging.GroupStats{
			Group:        g.name,
			Backlog:      messaging.KnownCount(backlog),
			InFlight:     messaging.KnownCount(inFlight),
			OldestAge:    messaging.KnownAge(age),
			Redeliveries: messaging.KnownCount(int64(g.redeliver)),
			Consumers:    messaging.KnownCount(int64(g.members)),
		})
	}
	slices.SortFunc(st.Groups, func(a, b messaging.GroupStats) int { return strings.Compare(a.Group, b.Group) })
	return st
}

// Topics lists the broker's topics, sorted: those published to, subscribed
// to or provisioned, and not deleted since.
func (c *Client) Topics(ctx context.Context) ([]string, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("memory: topics: %w", messaging.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.b.mu.Lock()
	names := make([]string, 0, len(c.b.topics))
	for n := range c.b.topics {
		names = append(names, n)
	}
	c.b.mu.Unlock()
	slices.Sort(names)
	return names, nil
}
