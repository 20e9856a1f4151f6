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
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
)

// Consumer metadata keys recording which topic and group a durable consumer
// belongs to, so that two names mapping to the same consumer name are
// detected instead of silently sharing messages.
const (
	metaTopic = "messaging-topic"
	metaGroup = "messaging-group"
)

// ephemeralInactive is how long the server keeps an ephemeral subscription's
// consumer after its client stopped pulling (crashed without deleting it).
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
// WithExistingStreams, finding it) on first use.
func (c *Client) stream(ctx context.Context, topic string) (string, error) {
	if v, ok := c.streams.Load(topic); ok {
		return v.(string), nil
	}
	if c.cfg.bindStreams {
		name, err := c.js.StreamNameBySubject(ctx, topic)
		if err != nil {
			return "", fmt.Errorf("find the stream of subject %s: %w", topic, err)
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
			return "", fmt.Errorf("look up stream %s: %w", name, err)
		}
		if legacy, ok := c.legacyStream(ctx, topic); ok {
			c.streams.Store(topic, legacy)
			return legacy, nil
		}
		_, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
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
		})
		if err == nil {
			c.streams.Store(topic, name)
			return name, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return "", fmt.Errorf("create stream %s for topic %s (if another stream captures the subject, use WithExistingStreams): %w", name, topic, err)
		}
		// Created concurrently by someone else: look it up again.
	}
}

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
// settings win).
func (c *Client) group(ctx context.Context, stream, topic, group string, start messaging.Position, o *messaging.SubscribeOptions) (jetstream.Consumer, error) {
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
		if o.MaxAttempts > 0 {
			cfg.MaxDeliver = o.MaxAttempts
		}
		setBackoff(&cfg, *o)
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
		if errors.Is(err, jetstream.ErrConsumerNotFound) && attempt == 0 {
			cons, err = c.js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) || errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse) {
				continue // created concurrently: use it
			}
			if err != nil {
				return nil, fmt.Errorf("create consumer %s on stream %s: %w", name, stream, err)
			}
			return cons, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up consumer %s on stream %s: %w", name, stream, err)
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
				return nil, fmt.Errorf("update consumer %s on stream %s: %w", name, stream, err)
			}
		}
		return cons, nil
	}
}

// Provision creates topic's stream and a durable consumer per group,
// starting at the beginning of the stream, so that messages published
// before the groups' first subscribers are kept for them. Idempotent.
func (c *Client) Provision(ctx context.Context, topic string, groups ...string) error {
	if c.closed.Load() {
		return fmt.Errorf("provision: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("provision: topic: %w", err)
	}
	for _, g := range groups {
		if err := messaging.ValidateName(g); err != nil {
			return fmt.Errorf("provision: group: %w", err)
		}
	}
	if c.cfg.mode == ModeCore {
		return nil // nothing to create: core NATS keeps no state
	}
	return c.withStream(ctx, topic, func(stream string) error {
		for _, g := range groups {
			if _, err := c.group(ctx, stream, topic, g, messaging.Earliest, nil); err != nil {
				return fmt.Errorf("provision %s: %w", topic, err)
			}
		}
		return nil
	})
}

// DeleteTopic deletes topic's stream with its messages and groups. With
// WithExistingStreams it purges the topic's subject from the shared stream
// and deletes the topic's groups (consumers filtering on exactly its
// subject), leaving the stream. A missing topic is not an error. In core
// mode it does nothing.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	if c.closed.Load() {
		return fmt.Errorf("delete topic: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	if c.cfg.mode == ModeCore {
		return nil
	}
	defer c.streams.Delete(topic)
	if !c.cfg.bindStreams {
		names := []string{c.StreamName(topic)}
		if legacy, ok := c.legacyStream(ctx, topic); ok {
			names = append(names, legacy)
		}
		for _, name := range names {
			err := c.js.DeleteStream(ctx, name)
			if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("delete topic %s: %w", topic, err)
			}
		}
		return nil
	}
	name, err := c.js.StreamNameBySubject(ctx, topic)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(topic)); err != nil {
		return fmt.Errorf("delete topic %s: purge: %w", topic, err)
	}
	infos := s.ListConsumers(ctx)
	var doomed []string
	for info := range infos.Info() {
		if info.Config.FilterSubject == topic && info.Config.Durable != "" {
			doomed = append(doomed, info.Name)
		}
	}
	if err := infos.Err(); err != nil {
		return fmt.Errorf("delete topic %s: list consumers: %w", topic, err)
	}
	for _, n := range doomed {
		if err := s.DeleteConsumer(ctx, n); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete topic %s: consumer %s: %w", topic, n, err)
		}
	}
	return nil
}

// Subscribe delivers topic's messages to h; see messaging.Consumer.
//
// JetStream mode: a Group is a durable pull consumer (ConsumerName) with
// explicit acks, created at StartAt when new; without a Group the
// subscription has its own ephemeral consumer, deleted when it ends.
// Attempt is the server's delivery count. A handler error naks the message
// (with the RetryAfter delay, else with the RedeliveryBackoff delay of its
// attempt, else at once: the server holds it back); Permanent, or the last
// of MaxAttempts (also the consumer's MaxDeliver), terminates it.
// RedeliveryBackoff is the consumer's BackOff: the server's ack wait of the
// k-th delivery is RedeliveryBackoff[k-1] (the last entry repeats) instead
// of AckDeadline, so a crashed member's messages come back on that
// schedule; the schedule is cut to MaxAttempts entries, which is all that
// can be used. While a message waits for or runs in a handler the adapter
// tells the server it is in progress every third of its delivery's ack
// wait, so only a client that stopped (crashed, disconnected) has its
// messages redelivered. Messages fetched but not handled when the
// subscription ends are nak'ed back to the group at once.
//
// Core mode: see the package documentation.
func (c *Client) Subscribe(ctx context.Context, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	o, err := dispatch.SubscribeArgs(c.closed.Load(), topic, h, c.cfg.prefetch, opts)
	if err != nil {
		return nil, err
	}
	if c.cfg.mode == ModeCore {
		return c.subscribeCore(ctx, topic, h, o)
	}
	cons, removeEphemeral, err := c.consumer(ctx, topic, o)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(o.Prefetch))
	if err != nil {
		removeEphemeral()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		it.Stop()
		removeEphemeral()
		return nil, err
	}
	tr := newTracker(o)
	settle := c.settler(topic, o, tr)
	pool := dispatch.NewPool(sub.HandlerContext(), o.Concurrency, max(o.Prefetch-o.Concurrency, 0), h, settle, o.MaxAttempts)
	hbStop := make(chan struct{})
	var hbDone sync.WaitGroup
	hbDone.Go(func() { tr.heartbeat(hbStop) })
	go func() {
		err := c.consumeResuming(sub.FetchContext(), cons, it, o, topic, pool, tr, settle)
		pool.Close()
		close(hbStop)
		hbDone.Wait()
		removeEphemeral()
		sub.Finish(err)
	}()
	return sub, nil
}

// consumer returns the JetStream consumer a subscription with o pulls from:
// the group's durable consumer, or a new ephemeral one, and a function
// deleting the latter (a no-op for a group).
func (c *Client) consumer(ctx context.Context, topic string, o messaging.SubscribeOptions) (jetstream.Consumer, func(), error) {
	var (
		cons   jetstream.Consumer
		stream string
	)
	err := c.withStream(ctx, topic, func(s string) error {
		stream = s
		var err error
		if o.Group != "" {
			cons, err = c.group(ctx, s, topic, o.Group, o.StartAt, &o)
			return err
		}
		cfg := jetstream.ConsumerConfig{
			Description:       "messaging ephemeral subscription of topic " + topic,
			FilterSubject:     topic,
			AckPolicy:         jetstream.AckExplicitPolicy,
			AckWait:           o.AckDeadline,
			MaxDeliver:        -1,
			MaxAckPending:     c.cfg.maxAckPending,
			InactiveThreshold: ephemeralInactive,
		}
		if o.MaxAttempts > 0 {
			cfg.MaxDeliver = o.MaxAttempts
		}
		setBackoff(&cfg, o)
		if err := deliverPolicy(o.StartAt, &cfg); err != nil {
			return err
		}
		cons, err = c.js.CreateConsumer(ctx, s, cfg)
		if err != nil {
			return fmt.Errorf("create ephemeral consumer on stream %s: %w", s, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if o.Group != "" {
		return cons, func() {}, nil
	}
	name := cons.CachedInfo().Name
	return cons, func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.js.DeleteConsumer(dctx, stream, name)
	}, nil
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

// settler returns the function settling a subscription's messages by their
// handler's result: ack, nak (with the RetryAfter delay, else the backoff
// delay of the attempt), term, or nak at once for a message never handled.
func (c *Client) settler(topic string, o messaging.SubscribeOptions, tr *tracker) dispatch.SettleFunc {
	termReasonOK := versionAtLeast(c.nc.ConnectedServerVersion(), 2, 10, 4)
	schedule := backoffSchedule(o)
	log := c.cfg.logger
	return func(d dispatch.Delivery, r dispatch.Result) {
		jm := d.Token.(jetstream.Msg)
		tr.remove(jm)
		var err error
		switch r.Outcome {
		case dispatch.Ack:
			err = jm.Ack()
		case dispatch.Term:
			log.Warn("nats: message not redelivered", "topic", topic, "group", o.Group, "id", d.Msg.ID, "attempt", d.Msg.Attempt, "error", r.Err)
			reason := r.Err.Error()
			if len(reason) > 200 {
				reason = reason[:200]
			}
			if termReasonOK {
				err = jm.TermWithReason(reason)
			} else {
				err = jm.Term() // servers before 2.10.4 ignore a reason'd term
			}
		case dispatch.Nack:
			delay := r.Delay
			if len(schedule) > 0 {
				// A plain nak is redelivered at once, whatever the BackOff.
				wait := ackWait(schedule, 0, d.Msg.Attempt)
				if delay <= 0 {
					delay = wait
				}
				// The server redelivers a message nak'ed with delay d once
				// it is d-AckWait old, and with a BackOff it measures age
				// against the attempt's entry (AckWait is the first):
				// subtract the difference. A shorter RetryAfter is rounded
				// up to it, as a nak cannot carry a negative delay.
				delay = max(delay-(wait-schedule[0]), time.Nanosecond)
			}
			if delay > 0 {
				err = jm.NakWithDelay(delay)
			} else {
				err = jm.Nak()
			}
		case dispatch.Release:
			err = jm.Nak()
		}
		if err != nil {
			log.Warn("nats: settling a message failed; the server redelivers it after the ack deadline", "topic", topic, "group", o.Group, "id", d.Msg.ID, "outcome", r.Outcome, "error", err)
		}
	}
}

// consumeResuming runs consume and, when the iterator fails while the
// subscription still runs (a terminal pull status from a server that is
// still recovering JetStream after a restart, for example), reopens it with
// exponential backoff: a subscription ends only with its context or a closed
// connection. Nothing is lost meanwhile: unacknowledged messages stay with
// the durable consumer.
func (c *Client) consumeResuming(ctx context.Context, cons jetstream.Consumer, it jetstream.MessagesContext, o messaging.SubscribeOptions, topic string, pool *dispatch.Pool, tr *tracker, settle dispatch.SettleFunc) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	for {
		err := c.consume(ctx, it, topic, o.Group, pool, tr, settle)
		if ctx.Err() != nil || c.nc.IsClosed() {
			return err
		}
		wait := bo.NextBackOff()
		c.cfg.logger.Warn("nats: consumer stopped; resuming", "topic", topic, "group", o.Group, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		next, err := cons.Messages(jetstream.PullMaxMessages(o.Prefetch))
		if err != nil {
			c.cfg.logger.Warn("nats: reopening the consumer failed", "topic", topic, "group", o.Group, "error", err)
			continue // the drained iterator fails at once: back off again
		}
		it = next
	}
}

// consume feeds the pool from the iterator until ctx is done or the iterator
// fails; then it naks what the iterator had buffered.
func (c *Client) consume(ctx context.Context, it jetstream.MessagesContext, topic, group string, pool *dispatch.Pool, tr *tracker, settle dispatch.SettleFunc) error {
	defer func() {
		it.Drain()
		for {
			jm, err := it.Next(jetstream.NextMaxWait(time.Second))
			if err != nil {
				return
			}
			_ = jm.Nak()
		}
	}()
	next := jetstream.NextContext(ctx) // one option for every Next, not one allocation each
	for {
		jm, err := it.Next(next)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("consume %s: %w", topic, c.wrapConnErr(err))
		}
		m := toMessage(jm, topic, group)
		tr.add(jm, m.Attempt)
		d := dispatch.Delivery{Msg: m, Token: jm}
		if !pool.Submit(ctx, d) {
			settle(d, dispatch.Result{Outcome: dispatch.Release})
			return ctx.Err()
		}
	}
}

// toMessage builds the delivered message of a JetStream message.
func toMessage(jm jetstream.Msg, topic, group string) *messaging.Message {
	m := &messaging.Message{Topic: topic, Group: group, Attempt: 1}
	decode(jm.Headers(), jm.Data(), m)
	if md, err := jm.Metadata(); err == nil {
		m.Attempt = int(max(md.NumDelivered, 1))
		m.Offset = strconv.FormatUint(md.Sequence.Stream, 10)
		if m.Time.IsZero() {
			m.Time = md.Timestamp
		}
		if m.ID == "" {
			// Published without an ID (by code not using this library):
			// the stream position identifies it.
			m.ID = md.Stream + ":" + m.Offset
		}
	}
	return m
}

// tracker holds the messages a subscription has fetched and not settled,
// and keeps them from being redelivered while they wait or run: each gets
// an in-progress signal every third of its delivery's ack wait (AckDeadline,
// or the RedeliveryBackoff entry of its attempt, which may be much shorter).
type tracker struct {
	mu       sync.Mutex
	msgs     map[jetstream.Msg]beat
	schedule []time.Duration
	deadline time.Duration
	tick     time.Duration
	// now is a coarse clock the heartbeat advances every tick, read by add
	// instead of time.Now per message: it lags by at most a tick, so a
	// message's first signal can only come earlier than due, never later.
	now time.Time
}

// beat is when a tracked message's next in-progress signal is due, and how
// often it gets one.
type beat struct {
	due   time.Time
	every time.Duration
}

func newTracker(o messaging.SubscribeOptions) *tracker {
	t := &tracker{msgs: map[jetstream.Msg]beat{}, schedule: backoffSchedule(o), deadline: o.AckDeadline, now: time.Now()}
	shortest := o.AckDeadline
	if len(t.schedule) > 0 {
		shortest = slices.Min(t.schedule)
	}
	// Ticking at a sixth of the shortest ack wait, a signal due every third
	// of it is sent at most half an ack wait after the previous one.
	t.tick = max(shortest/6, 5*time.Millisecond)
	return t
}

// add tracks m, delivered for the attempt-th time. Its first signal is due
// after a sixth of its ack wait: it may have waited in the pull buffer.
func (t *tracker) add(m jetstream.Msg, attempt int) {
	every := max(ackWait(t.schedule, t.deadline, attempt)/3, 5*time.Millisecond)
	t.mu.Lock()
	t.msgs[m] = beat{due: t.now.Add(every / 2), every: every}
	t.mu.Unlock()
}

func (t *tracker) remove(m jetstream.Msg) {
	t.mu.Lock()
	delete(t.msgs, m)
	t.mu.Unlock()
}

// heartbeat sends InProgress for every tracked message when its signal is
// due, until stop is closed.
func (t *tracker) heartbeat(stop <-chan struct{}) {
	tick := time.NewTicker(t.tick)
	defer tick.Stop()
	var due []jetstream.Msg
	for {
		var now time.Time
		select {
		case <-stop:
			return
		case now = <-tick.C:
		}
		due = due[:0]
		t.mu.Lock()
		t.now = now
		for m, b := range t.msgs {
			if !now.Before(b.due) {
				due = append(due, m)
				t.msgs[m] = beat{due: now.Add(b.every), every: b.every}
			}
		}
		t.mu.Unlock()
		for _, m := range due {
			_ = m.InProgress() // a failure means the connection is gone: redelivery follows anyway
		}
	}
}

// Read delivers topic's stream from "from" on, in order, to h; see
// messaging.Stream. It uses an ordered consumer (no acknowledgements, no
// effect on groups); Offset is the stream sequence, AtTime uses the
// server's store time. In core mode it fails with ErrUnsupported.
func (c *Client) Read(ctx context.Context, topic string, from messaging.Position, h messaging.Handler) (messaging.Subscription, error) {
	if err := dispatch.ReadArgs(c.closed.Load(), topic, from, h); err != nil {
		return nil, err
	}
	if c.cfg.mode == ModeCore {
		return nil, fmt.Errorf("read: core NATS keeps no log: %w", messaging.ErrUnsupported)
	}
	var cfg jetstream.ConsumerConfig
	if err := deliverPolicy(from, &cfg); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var (
		cons       jetstream.Consumer
		streamName string
	)
	err := c.withStream(ctx, topic, func(stream string) error {
		streamName = stream
		ocfg := jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{topic},
			DeliverPolicy:  cfg.DeliverPolicy,
			OptStartSeq:    cfg.OptStartSeq,
			OptStartTime:   cfg.OptStartTime,
		}
		if from.Kind == messaging.PositionLatest {
			// Position at the current end explicitly, so everything stored
			// after Read returns is delivered even if the consumer is
			// recreated (reconnect) before its first message.
			s, err := c.js.Stream(ctx, stream)
			if err != nil {
				return err
			}
			ocfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			ocfg.OptStartSeq = s.CachedInfo().State.LastSeq + 1
		}
		var err error
		cons, err = c.js.OrderedConsumer(ctx, stream, ocfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s from %v: %w", topic, from, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		it.Stop()
		return nil, err
	}
	go func() {
		err := c.read(sub, it, topic, h)
		it.Stop()
		// The server would remove the ordered consumer after 5 minutes of
		// inactivity; remove it now.
		if info := cons.CachedInfo(); info != nil && !c.nc.IsClosed() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.js.DeleteConsumer(dctx, streamName, info.Name)
			cancel()
		}
		sub.Finish(err)
	}()
	return sub, nil
}

func (c *Client) read(sub *dispatch.Subscription, it jetstream.MessagesContext, topic string, h messaging.Handler) error {
	ctx := sub.FetchContext()
	for {
		jm, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s: %w", topic, c.wrapConnErr(err))
		}
		m := toMessage(jm, topic, "")
		m.Attempt = 1
		if r := dispatch.Invoke(sub.HandlerContext(), h, m, 0); r.Err != nil {
			return fmt.Errorf("read %s at offset %s: handler: %w", topic, m.Offset, r.Err)
		}
	}
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
