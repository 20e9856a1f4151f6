package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// engineCases are the cases of issue 13: behaviour the consumer engine
// (package engine) gives every adapter that runs on it.
func engineCases(caps messaging.Capabilities, deleter, shutdowner bool) []conformanceCase {
	return []conformanceCase{
		// Hand-over needs a broker that tracks each message's delivery
		// (AckDeadline): a log without per-message acknowledgement (Kafka)
		// cannot give one nacked message to another member; the engine
		// redelivers it in process, and only the member owning its
		// partition ever fetches it.
		{"NackHandOver", "Groups and AckDeadline", caps.Groups && caps.AckDeadline, (*suite).nackHandOver},
		{"ShutdownReleasesToGroup", "Groups", caps.Groups, (*suite).shutdownReleases},
		{"ShutdownInTime", "", true, (*suite).shutdownInTime},
		{"ShutdownLetsHandlersPublish", "messaging.Shutdowner", shutdowner, (*suite).shutdownLetsHandlersPublish},
		{"CloseLetsHandlersPublish", "", true, (*suite).closeLetsHandlersPublish},
		{"CloseIdlePrompt", "", true, (*suite).closeIdlePrompt},
		// A topic exists as broker state only where messages are kept
		// (core NATS subjects cannot be deleted).
		{"TopicDeletedEndsSubscription", "TopicDeleter and Persistent or Replay", deleter && (caps.Persistent || caps.Replay), (*suite).topicDeleted},
		{"TopicDeletedEndsGrouplessSubscription", "TopicDeleter and Persistent or Replay", deleter && (caps.Persistent || caps.Replay), (*suite).topicDeletedGroupless},
		{"ResubscribeResumes", "Groups, and Persistent or Replay", caps.Groups && (caps.Persistent || caps.Replay), (*suite).resubscribeResumes},
		{"RetryAfterSurvivesClose", "Groups, and Persistent or Replay", caps.Groups && (caps.Persistent || caps.Replay), (*suite).retryAfterSurvivesClose},
		// A released message comes to another subscription of its group.
		{"StopReleasesLastAttempt", "Groups, and Persistent or Replay", caps.Groups && (caps.Persistent || caps.Replay), (*suite).stopReleasesLastAttempt},
		{"RepeatedStopsLoseNothing", "Groups, and Persistent or Replay", caps.Groups && (caps.Persistent || caps.Replay), (*suite).repeatedStopsLoseNothing},
		{"StopReleasesToNextMember", "Groups, and Persistent or Replay", caps.Groups && (caps.Persistent || caps.Replay), (*suite).stopReleasesToNextMember},
		{"RecreatedTopicGroupStartsAfresh", "TopicDeleter, Groups, and Persistent or Replay", deleter && caps.Groups && (caps.Persistent || caps.Replay), (*suite).recreatedGroup},
	}
}

// handOverWithin bounds the hand-over cases: far below their AckDeadline,
// so only an immediate hand-over passes.
const handOverWithin = 5 * time.Second

// handOverDeadline is the AckDeadline of the hand-over cases.
const handOverDeadline = time.Minute

// nackHandOver: a message nacked (no delay) by one member is available to
// the other members of the group at once, not after the ack deadline.
func (s *suite) nackHandOver(t *testing.T) {
	g := s.group("nackhand")
	s.provision(g)
	failing := make(chan struct{}, 1)
	s.subscribe(t.Context(), s.c, func(context.Context, *messaging.Message) error {
		select {
		case failing <- struct{}{}:
		default:
		}
		return errors.New("integration: this member always fails")
	}, messaging.Group(g), messaging.AckDeadline(handOverDeadline))
	s.publish(s.c, &messaging.Message{ID: "hand-over", Payload: []byte("x")})
	select {
	case <-failing:
	case <-time.After(s.h.Timeout):
		t.Fatal("the failing member never got the message")
	}
	ch, h := receive(10)
	s.subscribe(t.Context(), h2(s, t), h, messaging.Group(g), messaging.AckDeadline(handOverDeadline))
	select {
	case m := <-ch:
		if m.ID != "hand-over" {
			t.Fatalf("got %s, want hand-over", m.ID)
		}
	case <-time.After(handOverWithin):
		t.Fatalf("the other member did not get the nacked message within %v (AckDeadline %v)", handOverWithin, handOverDeadline)
	}
}

// shutdownReleases: Shutdown with a handler blocked returns when its context
// ends, and every message the member held (the running one and those
// fetched ahead) goes to another member at once; the queued ones are never
// handled by the member that shut down.
func (s *suite) shutdownReleases(t *testing.T) {
	g := s.group("shutdown")
	s.provision(g)
	started := make(chan struct{}, 1)
	var calls atomic.Int32
	sub := s.subscribe(t.Context(), s.c, func(ctx context.Context, _ *messaging.Message) error {
		calls.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}, messaging.Group(g), messaging.Concurrency(1), messaging.Prefetch(8), messaging.AckDeadline(handOverDeadline))
	msgs := numbered("held", 3)
	for _, m := range msgs {
		m.Key = "one-key" // one worker: the first blocks it, the others wait behind it
	}
	s.publish(s.c, msgs...)
	select {
	case <-started:
	case <-time.After(s.h.Timeout):
		t.Fatal("handler never started")
	}
	col := NewCollector()
	s.subscribe(t.Context(), h2(s, t), col.Handler(), messaging.Group(g), messaging.AckDeadline(handOverDeadline))

	const grace = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), grace)
	defer cancel()
	begin := time.Now()
	err := sub.Shutdown(ctx)
	if took := time.Since(begin); took > grace+2*time.Second {
		t.Errorf("Shutdown took %v with a %v context", took, grace)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a blocked handler: %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("subscription not done 10s after Shutdown cancelled its handler")
	}
	col.WaitDistinct(t, len(msgs), handOverWithin)
	if n := calls.Load(); n != 1 {
		t.Errorf("the member that shut down handled %d messages, want 1 (the queued ones are released unhandled)", n)
	}
}

// shutdownInTime: Shutdown returns nil when the handlers finish before its
// context ends, and the client's Shutdown (where the client has one) stops
// every subscription and refuses new ones.
func (s *suite) shutdownInTime(t *testing.T) {
	c := s.h.Open(t)
	t.Cleanup(func() { _ = c.Close() })
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var returned atomic.Bool // set by the handler just before it returns
	sub, err := c.Subscribe(t.Context(), s.topic, func(ctx context.Context, _ *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		returned.Store(true)
		return nil
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	s.publish(s.c, &messaging.Message{ID: "in-time"})
	select {
	case <-started:
	case <-time.After(s.h.Timeout):
		t.Fatal("handler never started")
	}
	go func() {
		time.Sleep(100 * time.Millisecond) // the subject: Shutdown must wait for a handler that finishes in time
		close(release)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := sub.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a handler finishing in time: %v, want nil", err)
	} else if !returned.Load() {
		t.Error("Shutdown returned nil before the running handler returned")
	}
	select {
	case <-sub.Done():
	default:
		t.Error("Done not closed when Shutdown returned nil")
	}
	sd, ok := c.(messaging.Shutdowner)
	if !ok {
		return
	}
	other, err := c.Subscribe(t.Context(), s.topic, func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := sd.Shutdown(ctx); err != nil {
		t.Errorf("client Shutdown of an idle subscription: %v", err)
	}
	select {
	case <-other.Done():
	default:
		t.Error("client Shutdown returned before its subscription was done")
	}
	// Its consumer side is closed (messaging.Shutdowner).
	checkClosed(t, c, s.topic, "client Shutdown", true)
}

// shutdownLetsHandlersPublish: a client's Shutdown ends its consumer side
// only. A handler still running when the Shutdown began publishes its
// result (the usual consume-then-publish worker) and finishes, so its
// message is settled rather than given back; publishing still works after
// Shutdown returned, until Close.
func (s *suite) shutdownLetsHandlersPublish(t *testing.T) {
	s.handlersPublishWhileStopping(t, "Shutdown", func(ctx context.Context, c messaging.Client) error {
		return c.(messaging.Shutdowner).Shutdown(ctx)
	})
}

// closeLetsHandlersPublish: Close stops the consumer side first; a handler
// it waits for publishes its result (with PublishAsync where the client has
// it: Close closes its queue after the handlers returned), and only then do
// calls fail with ErrClosed.
func (s *suite) closeLetsHandlersPublish(t *testing.T) {
	s.handlersPublishWhileStopping(t, "Close", func(_ context.Context, c messaging.Client) error {
		return c.Close()
	})
}

// handlersPublishWhileStopping runs a handler that is still running when
// stop (named how) begins, and that then publishes; the publish must
// succeed and be stored.
func (s *suite) handlersPublishWhileStopping(t *testing.T, how string, stop func(context.Context, messaging.Client) error) {
	c := s.h.Open(t)
	t.Cleanup(func() { _ = c.Close() })
	opts := s.groupOpts("drain")
	check := s.groupOpts("check") // a second group, to see what was stored
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	published := make(chan error, 1)
	publish := func(ctx context.Context, m *messaging.Message) error { return c.Publish(ctx, s.topic, m) }
	if how == "Close" {
		if ap, ok := c.(messaging.AsyncPublisher); ok {
			publish = func(ctx context.Context, m *messaging.Message) error { return publishAsyncResult(ctx, ap, s.topic, m) }
		}
	}
	s.subscribe(t.Context(), c, func(ctx context.Context, m *messaging.Message) error {
		if m.ID != "work" {
			return nil
		}
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		err := publish(ctx, &messaging.Message{ID: "result"})
		select {
		case published <- err:
		default:
		}
		return err
	}, opts...)
	s.publish(s.c, &messaging.Message{ID: "work"})
	select {
	case <-started:
	case <-time.After(s.h.Timeout):
		t.Fatal("handler never started")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- stop(ctx, c) }()
	// The stop has begun once the client refuses new subscriptions.
	for {
		sub, err := c.Subscribe(ctx, s.topic, func(context.Context, *messaging.Message) error { return nil })
		if errors.Is(err, messaging.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("Subscribe while waiting for %s to begin: %v", how, err)
		}
		_ = sub.Close()
	}
	close(release)
	failed := false
	if err := <-published; err != nil {
		failed = true
		t.Errorf("a handler's publish during the client's %s: %v, want nil", how, err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("%s: %v, want nil (the handler finished in time)", how, err)
	}
	want := []string{"work", "result"}
	err := c.Publish(t.Context(), s.topic, &messaging.Message{ID: "after"})
	switch {
	case how == "Close" && !errors.Is(err, messaging.ErrClosed):
		failed = true
		t.Errorf("Publish after Close returned: %v, want ErrClosed", err)
	case how != "Close" && err != nil:
		failed = true
		t.Errorf("Publish after %s returned, before Close: %v, want nil", how, err)
	case how != "Close":
		want = append(want, "after")
	}
	if failed || !s.caps.Groups || !s.caps.Persistent {
		return
	}
	// What was published is stored: the other group gets it.
	col := NewCollector()
	s.subscribe(t.Context(), s.c, func(_ context.Context, m *messaging.Message) error {
		col.Add(m)
		return nil
	}, check...)
	col.WaitDistinct(t, len(want), s.h.Timeout)
	col.Report(t, want)
}

// closeIdlePrompt: Close does not wait for a fetch blocked in the broker;
// closing many idle subscriptions one after the other is quick.
func (s *suite) closeIdlePrompt(t *testing.T) {
	const n = 10
	subs := make([]messaging.Subscription, n)
	for i := range subs {
		var opts []messaging.SubscribeOption
		if s.caps.Groups {
			opts = append(opts, messaging.Group(s.group("idle")))
		}
		subs[i] = s.subscribe(t.Context(), s.c, func(context.Context, *messaging.Message) error { return nil }, opts...)
	}
	begin := time.Now()
	for _, sub := range subs {
		if err := sub.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("closing %d idle subscriptions took %v, want well under a second each", n, took)
	}
}

// topicDeleted: deleting the topic under a live subscription ends it with
// an error wrapping messaging.ErrTopicDeleted.
func (s *suite) topicDeleted(t *testing.T) {
	var opts []messaging.SubscribeOption
	if s.caps.Groups {
		g := s.group("deleted")
		s.provision(g)
		opts = append(opts, messaging.Group(g))
	}
	ch, h := receive(10)
	sub := s.subscribe(t.Context(), s.c, h, opts...)
	s.publish(s.c, &messaging.Message{ID: "before-delete"})
	s.next(ch, "the message published before the deletion")
	s.deleteTopicEnds(t, sub, "subscription")
	if s.caps.Replay {
		st := s.stream()
		s.publish(s.c, &messaging.Message{ID: "recreated"})
		rch, rh := receive(10)
		r, err := st.Read(t.Context(), s.topic, messaging.Earliest, rh)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		t.Cleanup(func() { _ = r.Close() })
		// The first message of the recreated topic is the one published
		// after the deletion: the deleted topic's messages are gone.
		if m := s.next(rch, "the message of the recreated topic"); m.ID != "recreated" {
			t.Fatalf("reading the recreated topic from Earliest delivered %s first, want recreated (DeleteTopic left the old messages)", m.ID)
		}
		s.deleteTopicEnds(t, r, "Read")
	}
}

// deleteTopicEnds deletes the topic with s.c and fails t unless sub (named
// what) then ends with an error wrapping messaging.ErrTopicDeleted.
func (s *suite) deleteTopicEnds(t *testing.T, sub messaging.Subscription, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	defer cancel()
	if err := s.c.(messaging.TopicDeleter).DeleteTopic(ctx, s.topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	select {
	case <-sub.Done():
	case <-time.After(s.h.Timeout):
		t.Fatalf("%s still running %v after its topic was deleted", what, s.h.Timeout)
	}
	if err := sub.Err(); !errors.Is(err, messaging.ErrTopicDeleted) {
		t.Errorf("%s: Err after the topic was deleted: %v, want ErrTopicDeleted", what, err)
	}
}

// topicDeletedGroupless: deleting the topic from another client (another
// process, as far as the adapter can tell) under a live group-less
// subscription ends it, once it has handled what was published before,
// with an error wrapping messaging.ErrTopicDeleted. topicDeleted tests a
// group's subscription where the adapter has groups, deleted by the
// subscribing client.
func (s *suite) topicDeletedGroupless(t *testing.T) {
	ch, h := receive(10)
	sub := s.subscribe(t.Context(), h2(s, t), h)
	s.publish(s.c, &messaging.Message{ID: "before-delete"})
	if m := s.next(ch, "the message published before the deletion"); m.ID != "before-delete" {
		t.Fatalf("got %s, want before-delete", m.ID)
	}
	s.deleteTopicEnds(t, sub, "group-less subscription of another client")
}

// recreatedGroup: a group that consumed a topic, deleted and provisioned
// again, gets the new topic's messages from its start: the deleted topic's
// position of the group (a committed offset, a last-delivered ID) is gone
// with it. A position kept would skip as many of the new topic's messages
// as the group had consumed of the old one.
func (s *suite) recreatedGroup(t *testing.T) {
	g := s.group("recreated")
	s.provision(g)
	ch, h := receive(10)
	sub := s.subscribe(t.Context(), s.c, h, messaging.Group(g))
	old := numbered("old", 5)
	s.publish(s.c, old...)
	for range old {
		s.next(ch, "a message of the topic before its deletion")
	}
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	defer cancel()
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.c.(messaging.TopicDeleter).DeleteTopic(ctx, s.topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	s.provision(g)
	s.publish(s.c, &messaging.Message{ID: "after-recreate"})
	ch, h = receive(10)
	s.subscribe(t.Context(), s.c, h, messaging.Group(g))
	if m := s.next(ch, "the recreated topic's first message"); m.ID != "after-recreate" {
		t.Fatalf("the group got %s first from the recreated topic, want after-recreate", m.ID)
	}
}

// resubscribeResumes: a group's subscription ended mid-stream (its
// context cancelled, then closed), then subscribed again, goes on where
// the first left: every message comes, and none that the first handled
// (its handler returned nil) comes again. Ending a subscription settles
// what finished.
func (s *suite) resubscribeResumes(t *testing.T) {
	g := s.group("resume")
	s.provision(g)
	msgs := numbered("resume", 40)
	s.publish(s.c, msgs...)
	first := NewCollector()
	enough := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sub := s.subscribe(ctx, s.c, func(ctx context.Context, m *messaging.Message) error {
		if first.Distinct() >= 10 {
			once.Do(func() { close(enough) })
			<-ctx.Done() // not handled: released
			return ctx.Err()
		}
		first.Add(m)
		return nil
	}, messaging.Group(g), messaging.Concurrency(1), messaging.Prefetch(4))
	select {
	case <-enough:
	case <-time.After(s.h.Timeout):
		t.Fatalf("the first subscription handled %d messages in %v, want 10", first.Distinct(), s.h.Timeout)
	}
	cancel() // the subscription ends, the handler waiting with it
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	second := NewCollector()
	s.subscribe(t.Context(), h2(s, t), second.Handler(), messaging.Group(g))
	missing := func(c *Collector) (ids []string) {
		for _, m := range msgs {
			if first.Count(m.ID) == 0 && c.Count(m.ID) == 0 {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}
	if !second.Wait(s.h.Timeout, func(c *Collector) bool { return len(missing(c)) == 0 }) {
		t.Fatalf("after resubscribing, never delivered: %v", missing(second))
	}
	var again []string
	for _, m := range first.Messages() {
		if second.Count(m.ID) > 0 {
			again = append(again, m.ID)
		}
	}
	if len(again) > 0 {
		t.Errorf("handled before Close and delivered again after resubscribing: %v", again)
	}
}

// retryAfterSurvivesClose: a message whose handler asked for a later
// retry (RetryAfter) and whose subscription was closed before the delay
// passed is not lost: a new subscription of the group gets it, as a
// redelivery. Where the library holds the delay in process, Close must
// hand the message back to the broker. Where the broker tracks each
// message's delivery (AckDeadline), it keeps the delay too: the message
// does not come back before it. A log (Kafka) gives it to the next reader
// of the partition at once.
func (s *suite) retryAfterSurvivesClose(t *testing.T) {
	const delay = 2 * time.Second
	g := s.group("retryclose")
	s.provision(g)
	failed := make(chan time.Time, 1)
	sub := s.subscribe(t.Context(), s.c, func(context.Context, *messaging.Message) error {
		select {
		case failed <- time.Now():
		default:
		}
		return messaging.RetryAfter(errors.New("integration: later"), delay)
	}, messaging.Group(g))
	s.publish(s.c, &messaging.Message{ID: "retry-after-close", Payload: []byte("x")})
	var failedAt time.Time
	select {
	case failedAt = <-failed:
	case <-time.After(s.h.Timeout):
		t.Fatal("the handler never got the message")
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ch, h := receive(10)
	s.subscribe(t.Context(), h2(s, t), h, messaging.Group(g))
	m := s.next(ch, "the message to retry, after its subscription was closed")
	if m.ID != "retry-after-close" {
		t.Fatalf("got %s, want retry-after-close", m.ID)
	}
	if took := time.Since(failedAt); s.caps.AckDeadline && took < delay {
		t.Errorf("redelivered %v after RetryAfter(%v), its subscription closed meanwhile", took, delay)
	}
	if s.caps.BrokerAttempts && m.Attempt < 2 {
		t.Errorf("Attempt %d, want at least 2 (a redelivery)", m.Attempt)
	}
}

// stopReleasesLastAttempt: with MaxAttempts(1), a subscription stopped
// (its context cancelled, then Close) while a handler runs and more
// messages wait fetched gives up none of them: the handler that returns
// its context's error did not fail, and the waiting ones never reached a
// handler. Each comes to the next subscription of the group, also after a
// second stop, though a broker that counts deliveries has counted them:
// JetStream's MaxDeliver must not be MaxAttempts, nor the delivery-limit
// of a quorum queue on RabbitMQ before 4.3 (the group is not provisioned:
// Subscribe makes it, with what the adapter sets for MaxAttempts).
func (s *suite) stopReleasesLastAttempt(t *testing.T) {
	g := s.group("stoplast")
	msgs := numbered("stoplast", 4)
	for _, m := range msgs {
		m.Key = "one-key" // one worker: the first blocks it, the others wait fetched
	}
	first := true
	s.stopTwiceAtLastAttempt(t, g, msgs, func(ctx context.Context, started chan<- struct{}) messaging.Subscription {
		// Not provisioned: the first Subscribe makes the group, with what
		// the broker sets for MaxAttempts (a quorum queue's delivery-limit).
		defer func() {
			if first {
				first = false
				s.publish(s.c, msgs...)
			}
		}()
		return s.subscribe(ctx, s.c, holdUntilStopped(started),
			messaging.Group(g), messaging.Concurrency(1), messaging.Prefetch(8), messaging.MaxAttempts(1))
	})
}

// repeatedStopsLoseNothing: a group with MaxAttempts(1) whose
// subscription is stopped again and again while messages are published
// and handled, as a rolling restart does (first while it holds many
// messages unhandled, then three times while it acknowledges them as fast
// as they come), loses none: a last subscription gets every message not
// handled before. A stop is no failure, however the broker counts the
// deliveries it cut short: on RabbitMQ before 4.3 a quorum queue whose
// x-delivery-limit was MaxAttempts dropped messages on their way to a
// stopping consumer, which the client never saw (the group is not
// provisioned: Subscribe makes it, with what the adapter sets for
// MaxAttempts).
func (s *suite) repeatedStopsLoseNothing(t *testing.T) {
	g := s.group("stops")
	const n, held, handledPerStop = 800, 200, 100
	msgs := numbered("stops", n)
	opts := []messaging.SubscribeOption{messaging.Group(g), messaging.MaxAttempts(1)}

	s.stopWhileHandling(t, "the holding subscription", func(ctx context.Context, started chan<- struct{}) messaging.Subscription {
		sub := s.subscribe(ctx, s.c, holdUntilStopped(started), append(opts, messaging.Concurrency(1), messaging.Prefetch(held))...)
		s.publish(s.c, msgs[:held]...)
		return sub
	})

	// The rest is published meanwhile, ten at a time, so the stops come
	// while messages flow.
	published := make(chan error, 1)
	var allPublished atomic.Bool
	go func() {
		var err error
		for i := held; i < n && err == nil; i += 10 {
			err = s.c.Publish(t.Context(), s.topic, msgs[i:i+10]...)
		}
		allPublished.Store(err == nil)
		published <- err
	}()
	col := NewCollector()
	collect := col.Handler()
	// Each stop comes after handledPerStop messages, or once all were
	// handled (a slow Close on a loaded host may leave none for the next).
	for stop := 1; stop <= 3; stop++ {
		var handled atomic.Int64
		sub := s.subscribe(t.Context(), s.c, func(ctx context.Context, m *messaging.Message) error {
			handled.Add(1)
			return collect(ctx, m)
		}, append(opts, messaging.Prefetch(20))...)
		if !col.Wait(s.h.Timeout, func(c *Collector) bool { return handled.Load() >= handledPerStop || c.Distinct() == n }) {
			if !allPublished.Load() {
				t.Fatalf("stop %d: %d messages handled in %v, want %d", stop, handled.Load(), s.h.Timeout, handledPerStop)
			}
			// Every message was published and none is left for this
			// subscription: those never handled are lost, as the last
			// subscription shows.
			t.Logf("stop %d: %d handled, %d of %d distinct, nothing more came", stop, handled.Load(), col.Distinct(), n)
			if err := sub.Close(); err != nil {
				t.Fatalf("stop %d: Close: %v", stop, err)
			}
			break
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("stop %d: Close: %v", stop, err)
		}
		t.Logf("stop %d: %d handled, %d of %d distinct so far", stop, handled.Load(), col.Distinct(), n)
	}
	if err := <-published; err != nil {
		t.Fatalf("Publish: %v", err)
	}

	s.subscribe(t.Context(), h2(s, t), collect, opts...)
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Distinct() == n }) {
		missing := col.Missing(ids(msgs))
		t.Fatalf("after four stops, %d of %d messages never delivered: %v", len(missing), n, missing[:min(len(missing), 10)])
	}
}

// stopReleasesToNextMember: a group's only member, stopped while it holds
// fewer messages than its Prefetch (one in its handler, one waiting), gives
// them back at once: a member subscribing after it gets both well within
// the ack deadline, three times over. Its fetch still had room when it
// stopped: on NATS a released message came back to that fetch, and one
// nak'ed as its inbox went away waited on nats-server 2.9 for the ack
// deadline.
func (s *suite) stopReleasesToNextMember(t *testing.T) {
	g := s.group("next")
	for round := 1; round <= 3; round++ {
		msgs := numbered(fmt.Sprintf("next%d", round), 2)
		for _, m := range msgs {
			m.Key = "one-key" // one worker: the first blocks it, the other waits behind it
		}
		s.stopWhileHandling(t, fmt.Sprintf("round %d", round), func(ctx context.Context, started chan<- struct{}) messaging.Subscription {
			sub := s.subscribe(ctx, s.c, holdUntilStopped(started), messaging.Group(g), messaging.Concurrency(1), messaging.Prefetch(8), messaging.AckDeadline(handOverDeadline))
			s.publish(s.c, msgs...)
			return sub
		})
		col := NewCollector()
		next := s.subscribe(t.Context(), s.c, col.Handler(), messaging.Group(g), messaging.AckDeadline(handOverDeadline))
		got := col.Wait(handOverWithin, func(c *Collector) bool { return len(c.Missing(ids(msgs))) == 0 })
		if err := next.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		if !got {
			t.Fatalf("round %d: released messages %v not delivered within %v (AckDeadline %v)", round, col.Missing(ids(msgs)), handOverWithin, handOverDeadline)
		}
	}
}

// holdUntilStopped is a handler that signals started, then waits for its
// context and fails with its error: the handler a subscription's stop
// interrupts.
func holdUntilStopped(started chan<- struct{}) messaging.Handler {
	return func(ctx context.Context, _ *messaging.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

// stopWhileHandling starts a subscription with start (its handler signals
// started) and stops it once the handler runs: its context cancelled,
// then Close. Failures name the subscription as label.
func (s *suite) stopWhileHandling(t *testing.T, label string, start func(ctx context.Context, started chan<- struct{}) messaging.Subscription) {
	t.Helper()
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sub := start(ctx, started)
	select {
	case <-started:
	case <-time.After(s.h.Timeout):
		t.Fatalf("%s: the handler never got a message", label)
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatalf("%s: Close: %v", label, err)
	}
}

// stopTwiceAtLastAttempt, twice, starts a subscription of group g with
// start (its handler signals started, then waits for its context and fails
// with its error) and stops it once the handler runs (stopWhileHandling).
// It fails t unless a third subscription of g, with MaxAttempts(1), then
// gets every one of msgs.
func (s *suite) stopTwiceAtLastAttempt(t *testing.T, g string, msgs []*messaging.Message, start func(ctx context.Context, started chan<- struct{}) messaging.Subscription) {
	for round := 1; round <= 2; round++ {
		s.stopWhileHandling(t, fmt.Sprintf("round %d", round), start)
	}
	col := NewCollector()
	s.subscribe(t.Context(), h2(s, t), col.Handler(), messaging.Group(g), messaging.MaxAttempts(1))
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Distinct() == len(msgs) }) {
		t.Fatalf("after two stops with MaxAttempts(1), never delivered again: %v", col.Missing(ids(msgs)))
	}
}
