package redis

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/unavail"
)

var (
	_ messaging.Inspector   = (*Client)(nil)
	_ messaging.TopicLister = (*Client)(nil)
)

// Inspect reports topic's stream and consumer groups as Redis keeps them, in
// two pipelined round trips: XINFO STREAM, XINFO GROUPS and TIME, then one
// XRANGE of a single entry per group with a backlog. Figures:
//
//   - Messages: the stream's length (XLEN); First and Last its first and
//     last entry IDs. Bytes is unknown.
//   - Backlog: the group's lag (entries after its last-delivered ID), but
//     at most the stream's length: Redis's lag still counts entries trimmed
//     away (XTRIM, maxlen=, max_age=) before the group read them, so when
//     its last-delivered ID is before the first entry the backlog is the
//     length. Redis cannot tell the lag after entries were deleted from the
//     middle of the stream (XDEL) or for a group created at an arbitrary
//     ID: then it is unknown.
//   - InFlight: the group's pending entries (read by a consumer, not
//     acknowledged).
//   - OldestAge: the server's time (TIME) minus the millisecond part of the
//     ID of the first entry after the group's last-delivered ID, which is
//     the server's time when the entry was added.
//   - Consumers: the consumers registered in the group. A subscription
//     deletes its consumer at Close; a crashed process's consumer stays until
//     a live member deletes it (stale_consumer_after, default 1h). While
//     entries released by members that left wait for another member to
//     claim them, one more consumer holds them (msgkit:released, see the
//     package documentation) and counts here.
//   - Redeliveries: unknown (Redis counts deliveries per pending entry only).
//
// A dead-letter topic (dead_letter_suffix=) is a stream of its own: inspect it by
// its name. A missing stream fails with messaging.ErrTopicNotFound.
func (c *Client) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "inspect", topic); err != nil {
		return messaging.TopicStats{}, err
	}
	return unavail.RetryValue(ctx, "redis", "inspect "+topic, c.cfg.unavailable, c.unreachable, func(ctx context.Context) (messaging.TopicStats, error) {
		return c.inspect(ctx, topic)
	})
}

// inspect is Inspect after its checks, once.
func (c *Client) inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	key := c.StreamKey(topic)
	pipe := c.rc.Pipeline()
	sic := pipe.XInfoStream(ctx, key)
	gic := pipe.XInfoGroups(ctx, key)
	tc := pipe.Time(ctx)
	_, _ = pipe.Exec(ctx) // each command's error is read below
	si, err := sic.Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return messaging.TopicStats{}, fmt.Errorf("redis: inspect: no stream %s: %w", key, messaging.ErrTopicNotFound)
		}
		return messaging.TopicStats{}, c.opError("inspect "+topic, err)
	}
	groups, err := gic.Result()
	if err != nil {
		return messaging.TopicStats{}, c.opError("inspect "+topic, err)
	}
	now, err := tc.Result()
	if err != nil {
		return messaging.TopicStats{}, c.opError("inspect "+topic, err)
	}
	st := messaging.TopicStats{
		Topic:    topic,
		Broker:   "redis",
		Messages: messaging.KnownCount(si.Length),
		Groups:   make([]messaging.GroupStats, len(groups)),
	}
	if si.Length > 0 {
		st.First, st.Last = si.FirstEntry.ID, si.LastEntry.ID
	}
	// The oldest undelivered entry of each group with a backlog: the first
	// after its last-delivered ID.
	heads := make([]*goredis.XMessageSliceCmd, len(groups))
	pipe = c.rc.Pipeline()
	for i, g := range groups {
		backlog, known := g.Lag, g.Lag >= 0
		switch {
		case !known && compareIDs(g.LastDeliveredID, si.LastGeneratedID) >= 0:
			backlog, known = 0, true // nothing was added after its position
		case known && si.Length > 0 && compareIDs(g.LastDeliveredID, si.FirstEntry.ID) < 0:
			// Trimmed past its position: the lag still counts the entries
			// trimmed away; every entry left is undelivered.
			backlog = si.Length
		case known:
			backlog = min(backlog, si.Length)
		}
		gs := messaging.GroupStats{
			Group:     g.Name,
			InFlight:  messaging.KnownCount(g.Pending),
			Consumers: messaging.KnownCount(g.Consumers),
		}
		if known {
			gs.Backlog = messaging.KnownCount(backlog)
		}
		if known && backlog == 0 {
			gs.OldestAge = messaging.KnownAge(0)
		} else {
			heads[i] = pipe.XRangeN(ctx, key, "("+g.LastDeliveredID, "+", 1)
		}
		st.Groups[i] = gs
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
	}
	for i, h := range heads {
		if h == nil {
			continue
		}
		msgs, err := h.Result()
		if err != nil {
			return messaging.TopicStats{}, c.opError("inspect "+topic, err)
		}
		if len(msgs) == 0 {
			// Trimmed or deleted since: nothing left to deliver.
			st.Groups[i].Backlog, st.Groups[i].OldestAge = messaging.KnownCount(0), messaging.KnownAge(0)
			continue
		}
		if ms, ok := idMillis(msgs[0].ID); ok {
			st.Groups[i].OldestAge = messaging.KnownAge(max(now.Sub(time.UnixMilli(ms)), 0))
		}
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Group < st.Groups[j].Group })
	return st, nil
}

// idMillis returns the millisecond part of a stream entry ID ("ms-seq").
func idMillis(id string) (int64, bool) {
	ms, _, err := parseID(id)
	return int64(ms), err == nil
}

// compareIDs orders two stream entry IDs; a malformed one sorts first.
func compareIDs(a, b string) int {
	ams, aseq, _ := parseID(a)
	bms, bseq, _ := parseID(b)
	if c := cmp.Compare(ams, bms); c != 0 {
		return c
	}
	return cmp.Compare(aseq, bseq)
}

// Topics lists the topics whose streams exist: the keys of type stream under
// the client's prefix (SCAN ... TYPE stream, on every master in cluster
// mode), named as the client names them (hash tags removed), sorted. Keys
// whose names are not valid topic names are left out. With an empty prefix
// every stream of the database is listed, including streams other
// applications keep; so are the streams of a client whose prefix extends
// this one's ("app:" lists "app:x" + topic as topic "x"+topic).
func (c *Client) Topics(ctx context.Context) ([]string, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("redis: topics: %w", messaging.ErrClosed)
	}
	return unavail.RetryValue(ctx, "redis", "list topics", c.cfg.unavailable, c.unreachable, c.topics)
}

// topics is Topics after its checks, once.
func (c *Client) topics(ctx context.Context) ([]string, error) {
	pattern := globEscape(c.cfg.prefix) + "*"
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	scan := func(ctx context.Context, rc goredis.UniversalClient) error {
		it := rc.ScanType(ctx, 0, pattern, 1000, "stream").Iterator()
		for it.Next(ctx) {
			if t, ok := c.topicOf(it.Val()); ok {
				mu.Lock()
				names[t] = true
				mu.Unlock()
			}
		}
		return it.Err()
	}
	var err error
	if cc, ok := c.rc.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error { return scan(ctx, n) })
	} else {
		err = scan(ctx, c.rc)
	}
	if err != nil {
		return nil, c.opError("list topics", err)
	}
	return slices.Sorted(maps.Keys(names)), nil
}

// topicOf maps a stream key back to its topic, if it is one.
func (c *Client) topicOf(key string) (string, bool) {
	t, ok := strings.CutPrefix(key, c.cfg.prefix)
	if !ok {
		return "", false
	}
	if c.hashTag {
		if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
			return "", false
		}
		t = t[1 : len(t)-1]
	}
	if messaging.ValidateName(t) != nil {
		return "", false
	}
	return t, true
}

// globEscape escapes the characters SCAN's MATCH pattern interprets.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
