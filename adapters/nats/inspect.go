package nats

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

var (
	_ messaging.Inspector   = (*Client)(nil)
	_ messaging.TopicLister = (*Client)(nil)
)

// descGroup and descTopic frame the description the adapter gives a group's
// durable consumer ("messaging group G of topic T"), which names the group
// on servers without consumer metadata (before 2.10).
const (
	descGroup = "messaging group "
	descTopic = " of topic "
)

// Inspect reports topic's stream and the groups (durable consumers filtered
// on the topic) as the JetStream server keeps them, without creating
// anything: one stream info request, one consumer list request, and one
// message get per group with a backlog. In core mode it fails with an error
// wrapping messaging.ErrUnsupported: core NATS keeps no messages and no
// consumer state. Figures:
//
//   - Messages, Bytes, First and Last: the stream's state (sequences). With
//     WithExistingStreams, where a stream may hold several topics, Messages
//     is the topic's subject count and Bytes, First and Last are unknown.
//   - Backlog: the consumer's NumPending (matching messages not yet
//     delivered); InFlight: NumAckPending (delivered, not acknowledged,
//     including messages nak'ed with a delay and not yet redelivered);
//     Redeliveries: NumRedelivered (messages pending acknowledgement that
//     were delivered more than once: a current count, not a total).
//   - OldestAge: now (this process's clock) minus the stored time of the
//     first message of the topic after the consumer's delivered stream
//     sequence.
//   - Consumers: unknown. Groups are pull consumers; the server counts
//     waiting pull requests, not the subscriptions behind them.
//
// Ephemeral consumers (subscriptions without a group) are not listed. A
// missing stream fails with messaging.ErrTopicNotFound.
func (c *Client) Inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "inspect", topic); err != nil {
		return messaging.TopicStats{}, err
	}
	if c.cfg.mode == ModeCore {
		return messaging.TopicStats{}, fmt.Errorf("nats: inspect %s: core NATS keeps no messages nor consumer state: %w", topic, messaging.ErrUnsupported)
	}
	var st messaging.TopicStats
	err := c.whileUnreachable(ctx, "inspect "+topic, func(ctx context.Context) error {
		var err error
		st, err = c.inspect(ctx, topic)
		return err
	})
	return st, err
}

// inspect is Inspect after its checks, in JetStream mode.
func (c *Client) inspect(ctx context.Context, topic string) (messaging.TopicStats, error) {
	s, err := c.existingStream(ctx, topic)
	if err != nil {
		return messaging.TopicStats{}, c.inspectError(topic, err)
	}
	st := messaging.TopicStats{Topic: topic, Broker: "nats", Groups: []messaging.GroupStats{}}
	info := s.CachedInfo()
	if c.cfg.bindStreams {
		if info, err = s.Info(ctx, jetstream.WithSubjectFilter(topic)); err != nil {
			return messaging.TopicStats{}, c.inspectError(topic, err)
		}
		st.Messages = messaging.KnownCount(int64(info.State.Subjects[topic]))
	} else {
		st.Messages = messaging.KnownCount(int64(info.State.Msgs))
		st.Bytes = messaging.KnownCount(int64(info.State.Bytes))
		if info.State.Msgs > 0 {
			st.First = strconv.FormatUint(info.State.FirstSeq, 10)
			st.Last = strconv.FormatUint(info.State.LastSeq, 10)
		}
	}
	list := s.ListConsumers(ctx)
	var consumers []*jetstream.ConsumerInfo
	for ci := range list.Info() {
		if ci.Config.Durable != "" && filtersOn(ci.Config, topic) {
			consumers = append(consumers, ci)
		}
	}
	if err := list.Err(); err != nil {
		return messaging.TopicStats{}, c.inspectError(topic, err)
	}
	for _, ci := range consumers {
		g := messaging.GroupStats{
			Group:        groupOf(ci, topic),
			Backlog:      messaging.KnownCount(int64(ci.NumPending)),
			InFlight:     messaging.KnownCount(int64(ci.NumAckPending)),
			Redeliveries: messaging.KnownCount(int64(ci.NumRedelivered)),
		}
		if ci.NumPending == 0 {
			g.OldestAge = messaging.KnownAge(0)
		} else {
			m, err := s.GetMsg(ctx, ci.Delivered.Stream+1, jetstream.WithGetMsgSubject(topic))
			switch {
			case err == nil:
				g.OldestAge = messaging.KnownAge(max(time.Since(m.Time), 0))
			case errors.Is(err, jetstream.ErrMsgNotFound):
				// Removed since (limits): the next info tells.
			default:
				return messaging.TopicStats{}, c.inspectError(topic, err)
			}
		}
		st.Groups = append(st.Groups, g)
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Group < st.Groups[j].Group })
	return st, nil
}

// existingStream returns topic's stream without creating it (see stream),
// or an error wrapping jetstream.ErrStreamNotFound.
func (c *Client) existingStream(ctx context.Context, topic string) (jetstream.Stream, error) {
	if c.cfg.bindStreams {
		name, err := c.js.StreamNameBySubject(ctx, topic)
		if err != nil {
			return nil, err
		}
		return c.js.Stream(ctx, name)
	}
	s, err := c.js.Stream(ctx, c.StreamName(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if legacy, ok := c.legacyStream(ctx, topic); ok {
			return c.js.Stream(ctx, legacy)
		}
	}
	if err == nil && !slices.Contains(s.CachedInfo().Config.Subjects, topic) {
		return nil, fmt.Errorf("nats: stream %s does not capture subject %s (not created by this adapter for this topic): %w",
			c.StreamName(topic), topic, jetstream.ErrStreamNotFound)
	}
	return s, err
}

func (c *Client) inspectError(topic string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("nats: inspect %s: %w (%w)", topic, messaging.ErrTopicNotFound, err)
	case errors.Is(err, natsgo.ErrConnectionClosed):
		return fmt.Errorf("nats: inspect %s: %w (%w)", topic, messaging.ErrClosed, err)
	}
	return fmt.Errorf("nats: inspect %s: %w", topic, err)
}

// filtersOn reports whether a consumer reads exactly topic's subject.
func filtersOn(cfg jetstream.ConsumerConfig, topic string) bool {
	if len(cfg.FilterSubjects) > 0 {
		return len(cfg.FilterSubjects) == 1 && cfg.FilterSubjects[0] == topic
	}
	return cfg.FilterSubject == topic
}

// groupOf names the group of a durable consumer: from its metadata or
// description when this adapter created it, else the consumer's name.
func groupOf(ci *jetstream.ConsumerInfo, topic string) string {
	if g, ok := ci.Config.Metadata[metaGroup]; ok {
		return g
	}
	if rest, ok := strings.CutPrefix(ci.Config.Description, descGroup); ok {
		if g, ok := strings.CutSuffix(rest, descTopic+topic); ok {
			return g
		}
	}
	return ci.Name
}

// Topics lists the topics whose streams exist: those of streams this adapter
// created ("messaging topic T" descriptions, under the stream prefix), or,
// with WithExistingStreams, every subject without wildcards that some
// stream captures and that is a valid topic name; sorted. In core mode it
// fails with an error wrapping messaging.ErrUnsupported.
func (c *Client) Topics(ctx context.Context) ([]string, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("nats: topics: %w", messaging.ErrClosed)
	}
	if c.cfg.mode == ModeCore {
		return nil, fmt.Errorf("nats: topics: core NATS keeps no streams: %w", messaging.ErrUnsupported)
	}
	var topics []string
	err := c.whileUnreachable(ctx, "topics", func(ctx context.Context) error {
		var err error
		topics, err = c.topics(ctx)
		return err
	})
	return topics, err
}

// topics is Topics after its checks, in JetStream mode.
func (c *Client) topics(ctx context.Context) ([]string, error) {
	names := map[string]bool{}
	list := c.js.ListStreams(ctx)
	for si := range list.Info() {
		if c.cfg.bindStreams {
			for _, subj := range si.Config.Subjects {
				if messaging.ValidateName(subj) == nil {
					names[subj] = true
				}
			}
			continue
		}
		t, ok := strings.CutPrefix(si.Config.Description, "messaging topic ")
		if ok && strings.HasPrefix(si.Config.Name, c.cfg.streamPrefix) && slices.Contains(si.Config.Subjects, t) && messaging.ValidateName(t) == nil {
			names[t] = true
		}
	}
	if err := list.Err(); err != nil {
		if errors.Is(err, natsgo.ErrConnectionClosed) {
			return nil, fmt.Errorf("nats: topics: %w (%w)", messaging.ErrClosed, err)
		}
		return nil, fmt.Errorf("nats: topics: %w", err)
	}
	return slices.Sorted(maps.Keys(names)), nil
}
