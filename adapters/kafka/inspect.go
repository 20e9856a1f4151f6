package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/internal/unavail"
)

var (
	_ messaging.Inspector   = (*Client)(nil)
	_ messaging.TopicLister = (*Client)(nil)
)

// inspectParallel bounds the OffsetFetch and Fetch requests Inspect has in
// flight at once.
const inspectParallel = 8

// Inspect reports topic's partitions and the consumer groups that committed
// offsets for it or have members subscribed to it, from the cluster's state:
// metadata (never creating the topic), ListOffsets (first and end offset per
// partition), ListGroups and DescribeGroups (members), one OffsetFetch per
// group of the cluster (Kafka does not index groups by topic, so the cost
// grows with the number of groups), and one Fetch of one record per
// partition a group has a backlog on. Figures:
//
//   - Partitions: per partition the first and last offsets and the
//     messages retained (end - first); Messages their sum. Bytes is unknown.
//   - Backlog: the group's lag, the sum over partitions of end offset minus
//     committed offset. Kafka knows nothing about deliveries, only commits,
//     so the lag includes the messages a member has fetched and not yet
//     committed (this adapter commits every commit_interval, up to the first
//     record not yet handled): Backlog counts unsettled messages, in flight
//     included. Unknown while a partition has no committed offset.
//   - InFlight and Redeliveries: unknown (Kafka keeps no per-message
//     delivery state).
//   - OldestAge: now (this process's clock) minus the timestamp of the record
//     at the committed offset, the oldest over the partitions with a lag
//     (the record's CreateTime, which Publish sets to Message.Time, unless
//     the topic uses LogAppendTime). Like Backlog, it counts records in
//     flight.
//   - Consumers: the group's members subscribed to the topic
//     (DescribeGroups).
//
// A missing topic fails with messaging.ErrTopicNotFound.
func (c *Client) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "inspect", topic); err != nil {
		return messaging.TopicStats{}, err
	}
	return unavail.RetryValue(ctx, "kafka", "inspect "+topic, c.cfg.unavailable, c.unreachable, func(ctx context.Context) (messaging.TopicStats, error) {
		return c.inspect(ctx, topic)
	})
}

// inspect is Inspect after its checks, once.
func (c *Client) inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	fail := func(err error) (messaging.TopicStats, error) {
		if errors.Is(err, kafkago.UnknownTopicOrPartition) {
			return messaging.TopicStats{}, fmt.Errorf("kafka: inspect %s: %w (%w)", topic, messaging.ErrTopicNotFound, err)
		}
		return messaging.TopicStats{}, fmt.Errorf("kafka: inspect %s: %w", topic, err)
	}
	parts, err := c.existingPartitions(ctx, topic)
	if err != nil {
		return fail(err)
	}
	first, err := c.listOffsets(ctx, topic, parts, messaging.PositionEarliest, time.Time{})
	if err != nil {
		return fail(err)
	}
	end, err := c.listOffsets(ctx, topic, parts, messaging.PositionLatest, time.Time{})
	if err != nil {
		return fail(err)
	}
	st := messaging.TopicStats{Topic: topic, Broker: "kafka", Groups: []messaging.GroupStats{}}
	var total int64
	for _, p := range parts {
		ps := messaging.PartitionStats{Partition: p, Messages: messaging.KnownCount(end[p] - first[p])}
		if end[p] > first[p] {
			ps.First, ps.Last = strconv.FormatInt(first[p], 10), strconv.FormatInt(end[p]-1, 10)
		}
		total += end[p] - first[p]
		st.Partitions = append(st.Partitions, ps)
	}
	st.Messages = messaging.KnownCount(total)

	groups, err := c.topicGroups(ctx, topic, parts)
	if err != nil {
		return fail(err)
	}
	// The oldest record not committed, per group and partition with a lag.
	type head struct {
		group, part int
		offset      int64
	}
	var heads []head
	for i, g := range groups {
		gs := messaging.GroupStats{Group: g.name, Consumers: g.members}
		backlog, known := int64(0), true
		for _, p := range parts {
			off, ok := g.committed[p]
			if !ok || off < 0 {
				known = false
				break
			}
			off = max(off, first[p]) // records before were deleted (retention)
			if off < end[p] {
				backlog += end[p] - off
				heads = append(heads, head{i, p, off})
			}
		}
		if known {
			gs.Backlog = messaging.KnownCount(backlog)
			if backlog == 0 {
				gs.OldestAge = messaging.KnownAge(0)
			}
		} else {
			heads = slices.DeleteFunc(heads, func(h head) bool { return h.group == i })
		}
		st.Groups = append(st.Groups, gs)
	}
	times := make([]time.Time, len(heads))
	errs := make([]error, len(heads))
	run(len(heads), func(i int) {
		times[i], errs[i] = c.recordTime(ctx, topic, heads[i].part, heads[i].offset)
	})
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	now := time.Now()
	oldest := map[int]time.Time{}
	for i, h := range heads {
		if o, ok := oldest[h.group]; !times[i].IsZero() && (!ok || times[i].Before(o)) {
			oldest[h.group] = times[i]
		}
	}
	for g, t := range oldest {
		st.Groups[g].OldestAge = messaging.KnownAge(max(now.Sub(t), 0))
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Group < st.Groups[j].Group })
	return st, nil
}

// existingPartitions returns topic's partition IDs, sorted, without ever
// creating the topic; an error wraps kafkago.UnknownTopicOrPartition when it
// does not exist. kafka-go's transport answers metadata requests from a
// cache (refreshed every 10s): a topic missing there is looked up with an
// uncached DescribeConfigs, and when it exists the cache is refreshed.
func (c *Client) existingPartitions(ctx context.Context, topic string) ([]int, error) {
	ids, err := c.cachedPartitions(ctx, topic, false)
	if !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		return ids, err
	}
	resp, err := c.admin.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{{
		ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy"},
	}}})
	if err != nil {
		return nil, fmt.Errorf("kafka: describe topic %s: %w", topic, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("kafka: describe topic %s: %w", topic, r.Error)
		}
	}
	// The topic exists: a request that may create it refreshes the cache.
	return c.cachedPartitions(ctx, topic, true)
}

// cachedPartitions asks kafka-go's transport for topic's metadata; with
// refresh, a topic missing from its cache is looked up on the brokers (with
// auto-creation allowed: only for a topic known to exist).
func (c *Client) cachedPartitions(ctx context.Context, topic string, refresh bool) ([]int, error) {
	r, err := c.transport.RoundTrip(ctx, c.admin.Addr, &metadataAPI.Request{TopicNames: []string{topic}, AllowAutoTopicCreation: refresh})
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata of %s: %w", topic, err)
	}
	resp, ok := r.(*metadataAPI.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: metadata of %s: unexpected response %T", topic, r)
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, fmt.Errorf("kafka: metadata of %s: %w", topic, kafkago.Error(t.ErrorCode))
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, int(p.PartitionIndex))
		}
		if len(ids) == 0 {
			break
		}
		sort.Ints(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("kafka: metadata of %s: %w", topic, kafkago.UnknownTopicOrPartition)
}

// topicGroup is a group's state for one topic.
type topicGroup struct {
	name      string
	committed map[int]int64 // partition -> committed offset (-1: none)
	members   messaging.Count
}

// topicGroups returns the groups of the cluster that committed an offset
// for topic or have a member subscribed to it.
func (c *Client) topicGroups(ctx context.Context, topic string, parts []int) ([]topicGroup, error) {
	lg, err := c.admin.ListGroups(ctx, &kafkago.ListGroupsRequest{})
	if err != nil {
		return nil, fmt.Errorf("kafka: list groups: %w", err)
	}
	if lg.Error != nil {
		return nil, fmt.Errorf("kafka: list groups: %w", lg.Error)
	}
	ids := make([]string, 0, len(lg.Groups))
	for _, g := range lg.Groups {
		if g.ProtocolType == "" || g.ProtocolType == "consumer" {
			ids = append(ids, g.GroupID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	groups := make([]topicGroup, len(ids))
	errs := make([]error, len(ids))
	run(len(ids), func(i int) {
		g := topicGroup{name: ids[i], committed: map[int]int64{}}
		resp, err := c.admin.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: ids[i], Topics: map[string][]int{topic: parts}})
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("kafka: fetch offsets of group %s: %w", ids[i], err)
		case resp.Error != nil && !errors.Is(resp.Error, kafkago.GroupIdNotFound):
			errs[i] = fmt.Errorf("kafka: fetch offsets of group %s: %w", ids[i], resp.Error)
		default:
			for _, p := range resp.Topics[topic] {
				if p.Error == nil {
					g.committed[p.Partition] = p.CommittedOffset
				}
			}
		}
		groups[i] = g
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	dg, err := c.admin.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: ids})
	if err != nil {
		return nil, fmt.Errorf("kafka: describe groups: %w", err)
	}
	described := make(map[string]kafkago.DescribeGroupsResponseGroup, len(dg.Groups))
	for _, g := range dg.Groups {
		described[g.GroupID] = g
	}
	out := groups[:0]
	for _, g := range groups {
		found := false
		for _, off := range g.committed {
			found = found || off >= 0
		}
		d, ok := described[g.name]
		if ok && d.Error == nil {
			n := 0
			for _, m := range d.Members {
				if slices.Contains(m.MemberMetadata.Topics, topic) || assigned(m, topic) {
					n++
				}
			}
			g.members = messaging.KnownCount(int64(n))
			found = found || n > 0
		}
		if found {
			out = append(out, g)
		}
	}
	return out, nil
}

func assigned(m kafkago.DescribeGroupsResponseMember, topic string) bool {
	for _, t := range m.MemberAssignments.Topics {
		if t.Topic == topic {
			return true
		}
	}
	return false
}

// recordTime returns the timestamp of the record at offset in a partition
// (the zero time when there is none, the records having been deleted since).
func (c *Client) recordTime(ctx context.Context, topic string, partition int, offset int64) (time.Time, error) {
	resp, err := c.admin.Fetch(ctx, &kafkago.FetchRequest{
		Topic: topic, Partition: partition, Offset: offset,
		MinBytes: 1, MaxBytes: 1, MaxWait: 100 * time.Millisecond, // a whole first batch comes anyway
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("kafka: fetch %s partition %d offset %d: %w", topic, partition, offset, err)
	}
	if resp.Error != nil {
		if errors.Is(resp.Error, kafkago.OffsetOutOfRange) {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("kafka: fetch %s partition %d offset %d: %w", topic, partition, offset, resp.Error)
	}
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return time.Time{}, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("kafka: read %s partition %d offset %d: %w", topic, partition, offset, err)
		}
		if rec.Key != nil {
			_ = rec.Key.Close()
		}
		if rec.Value != nil {
			_ = rec.Value.Close()
		}
		if rec.Offset >= offset {
			return rec.Time, nil
		}
	}
}

// run calls f(0) ... f(n-1), at most inspectParallel at once, and waits.
func run(n int, f func(i int)) {
	sem := make(chan struct{}, inspectParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// Topics lists the cluster's topics, sorted, leaving out internal ones
// (names starting with "__") and names that are not valid topic names.
// The list comes from kafka-go's metadata cache (refreshed every
// metadata_ttl), which keeps the last list it had while the brokers cannot
// be reached: so Topics first asks a broker for its API versions (a
// request the cache does not answer), and is bounded as Inspect is.
func (c *Client) Topics(ctx context.Context) ([]string, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("kafka: list topics: %w", messaging.ErrClosed)
	}
	return unavail.RetryValue(ctx, "kafka", "list topics", c.cfg.unavailable, c.unreachable, c.listTopics)
}

// listTopics is Topics, once.
func (c *Client) listTopics(ctx context.Context) ([]string, error) {
	if _, err := c.admin.ApiVersions(ctx, &kafkago.ApiVersionsRequest{}); err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	r, err := c.transport.RoundTrip(ctx, c.admin.Addr, &metadataAPI.Request{})
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	resp, ok := r.(*metadataAPI.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: list topics: unexpected response %T", r)
	}
	var out []string
	for _, t := range resp.Topics {
		if t.ErrorCode == 0 && !t.IsInternal && !strings.HasPrefix(t.Name, "__") && messaging.ValidateName(t.Name) == nil {
			out = append(out, t.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}
