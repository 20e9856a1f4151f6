package nats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Consumer metadata keys recording which topic and group a durable consumer
// belongs to, so that two names mapping to the same consumer name are
// detected instead of silently sharing messages.
const (
	metaTopic = "messaging-topic"
	metaGroup = "messaging-group"
)

// ephemeralInactive is how long the server keeps an ephemeral subscription's
// consumer after its client stopped pulling and settling (crashed without
// deleting it); at least, as a subscription whose ack wait is longer keeps
// it that long.
const ephemeralInactive = time.Minute

// StreamName returns the name of the stream the Client creates for topic:
// the stream prefix and storeName(topic). Different topics get different
// names ("a.b" -> "a~b", "a_b" -> "a_b"). A stream an earlier version
// created under the old name ('.' replaced by '_') is still used when it
// captures exactly the topic's subject.
func (c *Client) StreamName(topic string) string {
	return shorten(c.cfg.streamPrefix + storeName(topic))
}

// storeName maps a topic or group name onto a JetStream stream or consumer
// name, which cannot contain '.': each '.' becomes '~', a character valid
// names do not contain (messaging.ValidateName), so the mapping is
// injective and reversible (replace '~' by '.'). Mapped names never start
// or end with '~' nor hold "~~" (names do not start or end with '.' nor
// hold ".."), so "~~" can join two of them unambiguously.
func storeName(name string) string { return strings.ReplaceAll(name, ".", "~") }

// legacyName is the mapping of earlier versions, '.' -> '_', which made
// "a.b" and "a_b" collide; it is only used to find streams and consumers
// created then.
func legacyName(name string) string { return strings.ReplaceAll(name, ".", "_") }

// maxStoreName bounds stream and consumer names, which the server uses as
// directory names in its store.
const maxStoreName = 200

// hashedLen is the length of a shortened name: a prefix, '~' and 16 hex
// digits of a hash.
const hashedLen = maxStoreName

// shorten keeps names shorter than hashedLen-16 bytes; longer ones become
// their first hashedLen-17 bytes, '~' and a hash of the whole name, so a
// shortened name (hashedLen bytes) never equals a kept one.
func shorten(name string) string {
	if len(name) < hashedLen-16 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:hashedLen-17] + "~" + hex.EncodeToString(sum[:8])
}

// legacyShorten is shorten of earlier versions.
func legacyShorten(name string) string {
	if len(name) <= maxStoreName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:maxStoreName-17] + "_" + hex.EncodeToString(sum[:8])
}

// ConsumerName returns the name of the durable consumer for a group of a
// topic: storeName(group) (each '.' becomes '~'), prefixed by
// storeName(topic) and "~~" with WithExistingStreams (where one stream
// holds many topics). Different groups get different names ("gx.y" ->
// "gx~y", "gx_y" -> "gx_y"). Names longer than 200 bytes are cut and end
// with a hash of the full name. A consumer created by an earlier version
// under the old name ('.' replaced by '_') is still used when its
// description names this group and topic.
func (c *Client) ConsumerName(topic, group string) string {
	name := storeName(group)
	if c.cfg.bindStreams {
		name = storeName(topic) + "~~" + name
	}
	return shorten(name)
}

func (c *Client) legacyConsumerName(topic, group string) string {
	name := legacyName(group)
	if c.cfg.bindStreams {
		name = legacyName(topic) + "__" + name
	}
	return legacyShorten(name)
}

// legacyStream returns the stream an earlier version created for topic,
// when there is one capturing exactly topic's subject.
func (c *Client) legacyStream(ctx context.Context, topic string) (string, bool) {
	name := legacyShorten(c.cfg.streamPrefix + legacyName(topic))
	if name == c.StreamName(topic) {
		return "", false
	}
	s, err := c.js.Stream(ctx, name)
	if err != nil || !slices.Equal(s.CachedInfo().Config.Subjects, []string{topic}) {
		return "", false
	}
	return name, true
}

// stream returns the name of topic's stream, creating the stream (or, with
// WithExistingStreams, finding it: no stream capturing the subject is an
// error wrapping messaging.ErrTopicNotFound) on first use.
func (c *Client) stream(ctx context.Context, topic string) (string, error) {
	if v, ok := c.streams.Load(topic); ok {
		return v.(string), nil
	}
	if c.cfg.bindStreams {
		name, err := c.js.StreamNameBySubject(ctx, topic)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return "", fmt.Errorf("nats: find the stream of subject %s: %w: %w", topic, messaging.ErrTopicNotFound, err)
		}
		if err != nil {
			return "", fmt.Errorf("nats: find the stream of subject %s: %w", topic, err)
		}
		c.streams.Store(topic, name)
		return name, nil
	}
	name := c.StreamName(topic)
	for attempt := 0; ; attempt++ {
		s, err := c.js.Stream(ctx, name)
		if err == nil {
			if subj := s.CachedInfo().Config.Subjects; !slices.Contains(subj, topic) {
				return "", fmt.Errorf("%w: stream %s exists for subjects %v, not topic %s (it was not created by this adapter for this topic; use WithStreamPrefix to keep names apart, or WithExistingStreams)", messaging.ErrInvalidTopic, name, subj, topic)
			}
			c.streams.Store(topic, name)
			return name, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) || attempt > 0 {
			return "", fmt.Errorf("nats: look up stream %s: %w", name, err)
		}
		if legacy, ok := c.legacyStream(ctx, topic); ok {
			c.streams.Store(topic, legacy)
			return legacy, nil
		}
		cfg := jetstream.StreamConfig{
			Name:        name,
			Description: "messaging topic " + topic,
			Subjects:    []string{topic},
			Retention:   c.cfg.retention,
			Storage:     c.cfg.storage,
			Replicas:    c.cfg.replicas,
			MaxAge:      c.cfg.maxAge,
			MaxBytes:    max(c.cfg.maxBytes, 0),
			Duplicates:  c.cfg.duplicates,
			Discard:     jetstream.DiscardOld,
		}
		_, err = c.js.CreateStream(ctx, cfg)
		if lostStoreDir(err) {
			_, err = c.js.CreateStream(ctx, cfg)
		}
		if err == nil {
			c.streams.Store(topic, name)
			return name, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return "", fmt.Errorf("nats: create stream %s for topic %s (if another stream captures the subject, use WithExistingStreams): %w", name, topic, err)
		}
		// Created concurrently by someone else: look it up again.
	}
}

// lostStoreDir reports whether err is the failure of a stream creation
// that raced the deletion of the account's last stream, a failure that the
// next creation does not repeat. The server removes an account's streams
// directory when the account's last stream is deleted (standalone 2.9
// servers, as the one here; clustered ones still in 2.15), and a stream
// created meanwhile finds no directory to make its own in: the server
// answers "error creating store for stream" (JetStream API error 10049,
// code 500) and logs "could not create storage directory". Creating it
// again makes the directories anew.
func lostStoreDir(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeStreamCreate &&
		strings.HasPrefix(apiErr.Description, "error creating store for stream")
}

// jsErrCodeStreamCreate is the server's JSStreamCreateErrF, which package
// jetstream does not name.
const jsErrCodeStreamCreate jetstream.ErrorCode = 10049

// withStream runs f with topic's stream, once more with a fresh lookup when
// the stream was deleted since it was cached.
func (c *Client) withStream(ctx context.Context, topic string, f func(stream string) error) error {
	for attempt := 0; ; attempt++ {
		name, err := c.stream(ctx, topic)
		if err != nil {
			return err
		}
		err = f(name)
		if attempt == 0 && errors.Is(err, jetstream.ErrStreamNotFound) {
			c.streams.Delete(topic)
			continue
		}
		return err
	}
}

// deliverPolicy maps a Position onto a consumer's deliver policy.
// lastSeq is needed for Latest only (see read).
func deliverPolicy(p messaging.Position, cfg *jetstream.ConsumerConfig) error {
	switch p.Kind {
	case messaging.PositionEarliest:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case messaging.PositionLatest:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case messaging.PositionAtOffset, messaging.PositionAfterOffset:
		seq, err := parseOffset(p)
		if err != nil {
			return err
		}
		if p.Kind == messaging.PositionAfterOffset {
			seq++
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = max(seq, 1)
	case messaging.PositionAtTime:
		t := p.Time
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	default:
		return p.Validate()
	}
	return nil
}

func parseOffset(p messaging.Position) (uint64, error) {
	seq, err := strconv.ParseUint(p.Offset, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v: NATS offsets are stream sequences (decimal integers)", messaging.ErrInvalidOption, p)
	}
	return seq, nil
}

// group returns topic's durable consumer for group, creating it starting at
// start when it does not exist. With o, an existing consumer's ack wait, max
// deliveries and backoff are updated to o's (the latest subscriber's
// settings win). Without create a missing consumer is an error wrapping
// jetstream.ErrConsumerNotFound.
func (c *Client) group(ctx context.Context, stream, topic, group string, start messaging.Position, o *messaging.SubscribeOptions, create bool) (jetstream.Consumer, error) {
	name := c.ConsumerName(topic, group)
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "messaging group " + group + " of topic " + topic,
		FilterSubject: topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       messaging.DefaultAckDeadline,
		MaxDeliver:    -1,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		MaxAckPending: c.cfg.maxAckPending,
		Metadata:      map[string]string{metaTopic: topic, metaGroup: group},
	}
	if o != nil {
		cfg.AckWait = o.AckDeadline
		setBackoff(&cfg, *o) // MaxDeliver stays unlimited: see setBackoff
	}
	if err := deliverPolicy(start, &cfg); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		cons, err := c.js.Consumer(ctx, stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) && attempt == 0 {
			if legacy := c.legacyConsumerName(topic, group); legacy != name {
				if old, lerr := c.js.Consumer(ctx, stream, legacy); lerr == nil && old.CachedInfo().Config.Description == cfg.Description {
					name, cons, err = legacy, old, nil
				}
			}
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) && attempt == 0 && create {
			cons, err = c.js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) || errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse) {
				continue // created concurrently: use it
			}
			if err != nil {
				return nil, fmt.Errorf("nats: create consumer %s on stream %s: %w", name, stream, err)
			}
			return cons, nil
		}
		if err != nil {
			return nil, fmt.Errorf("nats: look up consumer %s on stream %s: %w", name, stream, err)
		}
		have := cons.CachedInfo().Config
		// Metadata needs nats-server 2.10; the description is there since 2.2.
		if g, ok := have.Metadata[metaGroup]; ok && (g != group || have.Metadata[metaTopic] != topic) ||
			strings.HasPrefix(have.Description, "messaging group ") && have.Description != cfg.Description {
			return nil, fmt.Errorf("%w: consumer %s belongs to another group or topic (%q), not group %s of topic %s",
				messaging.ErrInvalidTopic, name, have.Description, group, topic)
		}
		if o != nil && (have.AckWait != cfg.AckWait || have.MaxDeliver != cfg.MaxDeliver || !slices.Equal(have.BackOff, cfg.BackOff)) {
			upd := have
			upd.AckWait, upd.MaxDeliver, upd.BackOff = cfg.AckWait, cfg.MaxDeliver, cfg.BackOff
			if cons, err = c.js.UpdateConsumer(ctx, stream, upd); err != nil {
				return nil, fmt.Errorf("nats: update consumer %s on stream %s: %w", name, stream, err)
			}
		}
		return cons, nil
	}
}

// Provision creates topic's stream and a durable consumer per group,
// starting at the beginning of the stream, so that messages published
// before the groups' first subscribers are kept for them. Idempotent.
func (c *Client) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "provision", topic, groups...); err != nil {
		return err
	}
	if c.cfg.mode == ModeCore {
		return nil // nothing to create: core NATS keeps no state
	}
	return c.whileUnreachable(ctx, "provision "+topic, func(ctx context.Context) error {
		return c.withStream(ctx, topic, func(stream string) error {
			for _, g := range groups {
				if _, err := c.group(ctx, stream, topic, g, messaging.Earliest, nil, true); err != nil {
					return fmt.Errorf("nats: provision %s: %w", topic, err)
				}
			}
			return nil
		})
	})
}

// DeleteTopic deletes topic's stream with its messages and groups. With
// WithExistingStreams it purges the topic's subject from the shared stream
// and deletes the topic's consumers (those filtering on exactly its
// subject: its groups, and the ephemeral ones of live subscriptions and
// reads, which then end with messaging.ErrTopicDeleted), leaving the
// stream. A missing topic is not an error. In core mode it does nothing.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if err := driver.CheckAdmin(ctx, c.closed.Load(), "delete topic", topic); err != nil {
		return err
	}
	if c.cfg.mode == ModeCore {
		return nil
	}
	defer c.streams.Delete(topic)
	return c.whileUnreachable(ctx, "delete topic "+topic, func(ctx context.Context) error {
		return c.deleteTopic(ctx, topic)
	})
}

// deleteTopic is DeleteTopic after its checks, in JetStream mode.
func (c *Client) deleteTopic(ctx context.Context, topic string) error {
	if !c.cfg.bindStreams {
		names := []string{c.StreamName(topic)}
		if legacy, ok := c.legacyStream(ctx, topic); ok {
			names = append(names, legacy)
		}
		for _, name := range names {
			err := c.js.DeleteStream(ctx, name)
			if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("nats: delete topic %s: %w", topic, err)
			}
		}
		return nil
	}
	name, err := c.js.StreamNameBySubject(ctx, topic)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		return fmt.Errorf("nats: delete topic %s: %w", topic, err)
	}
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("nats: delete topic %s: %w", topic, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(topic)); err != nil {
		return fmt.Errorf("nats: delete topic %s: purge: %w", topic, err)
	}
	infos := s.ListConsumers(ctx)
	var doomed []string
	for info := range infos.Info() {
		f := info.Config.FilterSubjects
		if info.Config.FilterSubject == topic || len(f) == 1 && f[0] == topic {
			doomed = append(doomed, info.Name)
		}
	}
	if err := infos.Err(); err != nil {
		return fmt.Errorf("nats: delete topic %s: list consumers: %w", topic, err)
	}
	for _, n := range doomed {
		if err := s.DeleteConsumer(ctx, n); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("nats: delete topic %s: consumer %s: %w", topic, n, err)
		}
	}
	return nil
}

// backoffSchedule is o's RedeliveryBackoff as the consumer's BackOff: cut
// to MaxAttempts-1 entries, the delays after each delivery but the last
// (later ones would never be used, and servers before 2.10 want fewer
// entries than MaxDeliver).
func backoffSchedule(o messaging.SubscribeOptions) []time.Duration {
	b := o.RedeliveryBackoff
	if o.MaxAttempts > 0 && len(b) >= o.MaxAttempts {
		b = b[:o.MaxAttempts-1]
	}
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

// unlimitedWithBackoff is the MaxDeliver of a consumer with a BackOff and
// no MaxAttempts: servers before 2.10 reject -1 (unlimited) with a BackOff
// ("max deliver is required to be > length of backoff values").
const unlimitedWithBackoff = math.MaxInt32

// setBackoff sets cfg's BackOff from o (cfg's MaxDeliver already set); the
// server then replaces AckWait by BackOff[0], which cfg says too, so that
// comparing it with an existing consumer's configuration finds no
// difference.
//
// MaxAttempts is not the consumer's MaxDeliver: the engine gives a message
// up (Term, logged) when its handler fails at the last allowed attempt.
// The server counts every delivery, also the naks that release a message
// no handler finished (a stopping subscription's prefetched messages and
// interrupted handlers), so a MaxDeliver would make the server drop,
// unlogged, a message released at its last delivery: with MaxAttempts(1),
// every message a subscription had fetched when it closed.
func setBackoff(cfg *jetstream.ConsumerConfig, o messaging.SubscribeOptions) {
	cfg.BackOff = backoffSchedule(o)
	if len(cfg.BackOff) > 0 {
		cfg.AckWait = cfg.BackOff[0]
		if cfg.MaxDeliver == -1 {
			cfg.MaxDeliver = unlimitedWithBackoff
		}
	}
}

// ackWait returns the server's ack wait for the attempt-th delivery of a
// message: the schedule's entry for that delivery (the last one repeating),
// else deadline.
func ackWait(schedule []time.Duration, deadline time.Duration, attempt int) time.Duration {
	if len(schedule) == 0 {
		return deadline
	}
	return schedule[min(max(attempt, 1), len(schedule))-1]
}

// versionAtLeast reports whether the server version v ("2.10.4",
// "2.11.0-beta.1") is at least major.minor.patch; an unparsable version is
// treated as old.
func versionAtLeast(v string, major, minor, patch int) bool {
	v, _, _ = strings.Cut(v, "-")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) != 3 {
		return false
	}
	want := [3]int{major, minor, patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return false
		}
		if n != want[i] {
			return n > want[i]
		}
	}
	return true
}
