package kafkatest_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/kafka"
	"github.com/msgkit/messaging/adapters/kafka/kafkatest"
	"github.com/msgkit/messaging/integration"
)

func deleteTopic(t *testing.T, c messaging.TopicDeleter, topic string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DeleteTopic(ctx, topic); err != nil {
			t.Logf("delete topic %s: %v", topic, err)
		}
	})
}

func recv(t *testing.T, ch <-chan *messaging.Message) *messaging.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
		return nil
	}
}

// TestOpenViaRegistry: messaging.Open picks the adapter by scheme; bad
// parameters are rejected by name. The URL's parameters are the README's
// (plus the test parameters).
func TestOpenViaRegistry(t *testing.T) {
	ctx, url := t.Context(), kafkatest.URL(t, "partitions=6", "acks=all")
	c, err := messaging.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*kafka.Client); !ok {
		t.Fatalf("Open returned %T", c)
	}
	_, err = messaging.Open(t.Context(), kafkatest.URL(t, "bogus=1"))
	if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown parameter: %v", err)
	}
}

// TestExistingKafkaGoPieces: a client built around an existing Writer and
// Dialer publishes through that writer; records written by plain kafka-go
// (no adapter headers) are consumed with a stable fallback ID.
func TestExistingKafkaGoPieces(t *testing.T) {
	brokers := strings.Split(kafkatest.Broker.Endpoint(t), ",")
	seed := brokers[0]
	myDialer := &kafkago.Dialer{Timeout: 5 * time.Second}
	myTransport := &kafkago.Transport{}
	w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireAll, Transport: myTransport}
	defer w.Close()
	myWriter := w
	// The README's form.
	c, err := kafka.New([]string{seed},
		kafka.WithDialer(myDialer),       // readers and consumer groups
		kafka.WithTransport(myTransport), // produce and admin requests
		kafka.WithWriter(myWriter))       // publish through an existing *kafkago.Writer
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	topic := integration.UniqueName(t, "pieces")
	deleteTopic(t, c, topic)
	if err := c.Provision(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *messaging.Message, 10)
	sub, err := c.Read(t.Context(), topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error { ch <- m; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "via-adapter", Payload: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if !c.Capabilities().Persistent {
		t.Error("a writer with RequireAll: Persistent should be claimed")
	}
	if nc, err := kafka.New(brokers, kafka.WithWriter(&kafkago.Writer{Addr: kafkago.TCP(brokers...)})); err != nil || nc.Capabilities().Persistent {
		t.Errorf("a writer without acks: Persistent claimed (err %v)", err)
	}
	if got := w.Stats().Messages; got != 1 {
		t.Errorf("the given writer wrote %d messages, want 1", got)
	}
	if m := recv(t, ch); m.ID != "via-adapter" {
		t.Fatalf("got %s", m.ID)
	}
	if err := w.WriteMessages(t.Context(), kafkago.Message{Topic: topic, Value: []byte("foreign")}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, ch)
	if m.ID != topic+"/0/1" || string(m.Payload) != "foreign" || m.Header != nil || m.Offset != "0:1" {
		t.Fatalf("foreign record: %+v", m)
	}
	if _, err := kafka.New(brokers, kafka.WithWriter(&kafkago.Writer{Topic: "fixed"})); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("writer with a topic: %v, want ErrInvalidOption", err)
	}
	if _, err := kafka.New(brokers, kafka.WithReaderConfig(func(rc *kafkago.ReaderConfig) { rc.MinBytes = 1 << 30 })); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("invalid reader config: %v, want ErrInvalidOption", err)
	}
}

// TestReadPartitionedPositions: on a multi-partition topic an offset
// position sets the named partitions and reads the others from the start;
// a list positions several; a missing partition is an error; a handler error
// ends the read and is reported by Err.
func TestReadPartitionedPositions(t *testing.T) {
	c := kafkatest.Open(t, "partitions=2")
	topic := integration.UniqueName(t, "parts")
	deleteTopic(t, c, topic)
	// Two keys the writer's murmur2 balancer puts in different partitions.
	keyA, keyB := "a", ""
	bal := &kafkago.Murmur2Balancer{}
	for i := 0; keyB == ""; i++ {
		k := "b" + strconv.Itoa(i)
		if bal.Balance(kafkago.Message{Key: []byte(k)}, 0, 1) != bal.Balance(kafkago.Message{Key: []byte(keyA)}, 0, 1) {
			keyB = k
		}
	}
	var a, b []*messaging.Message
	for i := range 5 {
		a = append(a, &messaging.Message{ID: "a" + strconv.Itoa(i), Key: keyA})
		b = append(b, &messaging.Message{ID: "b" + strconv.Itoa(i), Key: keyB})
	}
	if err := c.Publish(t.Context(), topic, append(a, b...)...); err != nil {
		t.Fatal(err)
	}
	// Learn where each key landed.
	offsets := map[string]string{}
	all := make(chan *messaging.Message, 20)
	sub, err := c.Read(t.Context(), topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error { all <- m; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		m := recv(t, all)
		offsets[m.ID] = m.Offset
	}
	sub.Close()
	pa, _, _ := strings.Cut(offsets["a0"], ":")
	pb, _, _ := strings.Cut(offsets["b0"], ":")
	if pa == pb {
		t.Fatalf("keys %q and %q landed in the same partition %s", keyA, keyB, pa)
	}

	collect := func(from messaging.Position, n int) map[string]bool {
		t.Helper()
		ch := make(chan *messaging.Message, 20)
		sub, err := c.Read(t.Context(), topic, from, func(_ context.Context, m *messaging.Message) error { ch <- m; return nil })
		if err != nil {
			t.Fatalf("Read %v: %v", from, err)
		}
		defer sub.Close()
		got := map[string]bool{}
		for range n {
			got[recv(t, ch).ID] = true
		}
		return got
	}
	// a3 onwards, and all of b (its partition is not named).
	got := collect(messaging.AtOffset(offsets["a3"]), 7)
	for _, id := range []string{"a3", "a4", "b0", "b4"} {
		if !got[id] {
			t.Errorf("AtOffset(%s): %s missing from %v", offsets["a3"], id, got)
		}
	}
	if got["a2"] {
		t.Errorf("AtOffset(%s) delivered a2", offsets["a3"])
	}
	got = collect(messaging.AfterOffset(offsets["a3"]+","+offsets["b1"]), 4)
	for _, id := range []string{"a4", "b2", "b3", "b4"} {
		if !got[id] {
			t.Errorf("AfterOffset list: %s missing from %v", id, got)
		}
	}
	if _, err := c.Read(t.Context(), topic, messaging.AtOffset("7:0"), func(context.Context, *messaging.Message) error { return nil }); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("offset in a missing partition: %v, want ErrInvalidOption", err)
	}

	boom := errors.New("boom")
	sub, err = c.Read(t.Context(), topic, messaging.Earliest, func(context.Context, *messaging.Message) error { return boom })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("read did not end after a handler error")
	}
	if !errors.Is(sub.Err(), boom) {
		t.Fatalf("Err %v, want the handler's error", sub.Err())
	}
}

// TestAutoCreateOff: with auto_create=false a missing topic is an error until
// Provision creates it.
func TestAutoCreateOff(t *testing.T) {
	c := kafkatest.Open(t, "auto_create=false")
	topic := integration.UniqueName(t, "nocreate")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := c.Publish(ctx, topic, messaging.NewMessage([]byte("x")))
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || len(pe.Failed()) != 1 {
		t.Fatalf("publish to a missing topic: %v, want a PublishError", err)
	}
	deleteTopic(t, c, topic)
	if err := c.Provision(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x"))); err != nil {
		t.Fatalf("publish after Provision: %v", err)
	}
}

// TestDeleteTopic: deleting a topic removes it and the groups this client
// provisioned on it; deleting a missing topic is not an error.
func TestDeleteTopic(t *testing.T) {
	c := kafkatest.Open(t)
	topic := integration.UniqueName(t, "del")
	group := integration.UniqueName(t, "g")
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	admin := &kafkago.Client{Addr: kafkago.TCP(strings.Split(kafkatest.Broker.Endpoint(t), ",")...), Timeout: 10 * time.Second}
	committed := func() (int, error) {
		resp, err := admin.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
		if err != nil {
			return 0, err
		}
		if resp.Error != nil {
			return 0, resp.Error
		}
		n := 0
		for _, p := range resp.Topics[topic] {
			if p.CommittedOffset >= 0 {
				n++
			}
		}
		return n, nil
	}
	if n, err := committed(); err != nil || n != 1 {
		t.Fatalf("after Provision: %d partitions with a committed offset (%v), want 1", n, err)
	}
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	if n, err := committed(); err == nil && n != 0 {
		t.Fatalf("after DeleteTopic the group still has %d committed offsets", n)
	}
	groups, err := admin.DescribeGroups(t.Context(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err == nil && len(groups.Groups) == 1 && groups.Groups[0].GroupState != "Dead" && groups.Groups[0].Error == nil {
		t.Errorf("group %s still exists after DeleteTopic: state %q", group, groups.Groups[0].GroupState)
	}
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Errorf("deleting a missing topic: %v", err)
	}
}

// TestTopicDeletedByAnotherClient: a client that made sure of a topic
// (auto-creation on, the default; the cluster's own auto-creation is off)
// creates it again after another client deleted it: its Publish and its
// Subscribe succeed, and a consumer gets what it publishes. With a long
// metadata TTL the produce request is what finds the topic missing; with a
// short one, most likely the metadata lookup. The client used to remember
// the topic for good and fail every Publish with ErrUnavailable.
func TestTopicDeletedByAnotherClient(t *testing.T) {
	for _, ttl := range []string{"1h", "50ms"} {
		t.Run("metadata_ttl="+ttl, func(t *testing.T) {
			a := kafkatest.Open(t, "metadata_ttl="+ttl, "unavailable_timeout=2s")
			b := kafkatest.Open(t)
			topic, group := integration.UniqueName(t, "foreigndel"), integration.UniqueName(t, "g")
			deleteTopic(t, b, topic)
			ctx := t.Context()
			publish := func(id string) {
				t.Helper()
				if err := a.Publish(ctx, topic, &messaging.Message{ID: id}); err != nil {
					t.Fatalf("Publish %s: %v", id, err)
				}
			}
			del := func() {
				t.Helper()
				if err := b.DeleteTopic(ctx, topic); err != nil {
					t.Fatal(err)
				}
			}
			publish("before")
			del()
			publish("after-delete")
			del()
			got := make(chan *messaging.Message, 4)
			sub, err := a.Subscribe(ctx, topic, func(_ context.Context, m *messaging.Message) error {
				got <- m
				return nil
			}, messaging.Group(group), messaging.StartAt(messaging.Earliest))
			if err != nil {
				t.Fatalf("Subscribe after the topic was deleted: %v", err)
			}
			t.Cleanup(func() { _ = sub.Close() })
			publish("after-subscribe")
			if m := recv(t, got); m.ID != "after-subscribe" {
				t.Fatalf("consumer got %s, want after-subscribe", m.ID)
			}
		})
	}
}

// TestPublishFailures: failures come back as a *messaging.PublishError
// naming the messages that failed, with the root sentinel where one applies.
func TestPublishFailures(t *testing.T) {
	c := kafkatest.Open(t, "max_message_size=0") // no client-side limit: the broker's applies
	topic := integration.UniqueName(t, "fail")
	deleteTopic(t, c, topic)
	err := c.Publish(t.Context(), topic, &messaging.Message{Payload: make([]byte, 2<<20)}, messaging.NewMessage([]byte("small")))
	var pe *messaging.PublishError
	// A record over the request limit goes alone, so the broker refuses it
	// and only it.
	if !errors.As(err, &pe) || !slices.Equal(pe.Failed(), []int{0}) || !errors.Is(pe.Errs[0], messaging.ErrMessageTooLarge) {
		t.Fatalf("2 MiB message and a small one: %v, want a PublishError for the first only, wrapping ErrMessageTooLarge", err)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	down, err := kafka.Open(ctx, "kafka://"+cluster.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	if err := down.Publish(ctx, topic, messaging.NewMessage([]byte("up"))); err != nil {
		t.Fatalf("publish while up: %v", err)
	}
	cluster.Close()
	short, cancel2 := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel2()
	msgs := []*messaging.Message{messaging.NewMessage([]byte("a")), messaging.NewMessage([]byte("b"))}
	err = down.Publish(short, topic, msgs...)
	if !errors.As(err, &pe) || len(pe.Failed()) != 2 {
		t.Fatalf("publish with the broker down: %v, want a PublishError for both messages", err)
	}
	_ = down.Close()
	if err := down.Publish(t.Context(), topic, msgs...); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("publish after Close: %v, want ErrClosed", err)
	}
}

// TestGroupStartAtOffsetAndTime: a new group starts at an offset or a time
// when asked; an existing group keeps its committed offsets regardless.
func TestGroupStartAtOffsetAndTime(t *testing.T) {
	c := kafkatest.Open(t)
	topic := integration.UniqueName(t, "gstart")
	deleteTopic(t, c, topic)
	early := []*messaging.Message{{ID: "e0"}, {ID: "e1"}, {ID: "e2"}}
	if err := c.Publish(t.Context(), topic, early...); err != nil {
		t.Fatal(err)
	}
	// Time is the subject: the late messages get a later timestamp (ms).
	time.Sleep(20 * time.Millisecond)
	middle := time.Now()
	time.Sleep(20 * time.Millisecond)
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "l0"}, &messaging.Message{ID: "l1"}); err != nil {
		t.Fatal(err)
	}
	first := func(group string, opts ...messaging.SubscribeOption) string {
		t.Helper()
		ch := make(chan string, 10)
		sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
			ch <- m.ID
			return nil
		}, append(opts, messaging.Group(group))...)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		select {
		case id := <-ch:
			return id
		case <-time.After(30 * time.Second):
			t.Fatal("nothing delivered")
			return ""
		}
	}
	if id := first(integration.UniqueName(t, "off"), messaging.StartAt(messaging.AtOffset("0:1"))); id != "e1" {
		t.Errorf("group at offset 0:1 started with %s, want e1", id)
	}
	if id := first(integration.UniqueName(t, "after"), messaging.StartAt(messaging.AfterOffset("0:1"))); id != "e2" {
		t.Errorf("group after offset 0:1 started with %s, want e2", id)
	}
	timed := integration.UniqueName(t, "time")
	if id := first(timed, messaging.StartAt(messaging.AtTime(middle))); id != "l0" {
		t.Errorf("group at a time started with %s, want l0", id)
	}
	// The group exists now (its handler acknowledged l0, maybe l1): StartAt
	// no longer moves it back.
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "l2"}); err != nil {
		t.Fatal(err)
	}
	if id := first(timed, messaging.StartAt(messaging.Earliest)); id != "l1" && id != "l2" {
		t.Errorf("the existing group resumed with %s, want l1 or l2 (its committed position)", id)
	}
}

// TestProvisionedGroupKeepsItsStart: a group provisioned on an empty topic
// has its offset (0) committed, so a later Subscribe with StartAt(Latest)
// does not move it: what was published in between is delivered.
func TestProvisionedGroupKeepsItsStart(t *testing.T) {
	c := kafkatest.Open(t)
	topic, group := integration.UniqueName(t, "prov"), integration.UniqueName(t, "g")
	deleteTopic(t, c, topic)
	if err := c.Provision(t.Context(), topic, group); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "between"}); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *messaging.Message, 10)
	sub, err := c.Subscribe(t.Context(), topic, func(_ context.Context, m *messaging.Message) error {
		ch <- m
		return nil
	}, messaging.Group(group), messaging.StartAt(messaging.Latest))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, ch); m.ID != "between" {
		t.Fatalf("the provisioned group started with %s, want between (published after Provision, before Subscribe)", m.ID)
	}
}

// TestReadAtTimeAfterLastRecord: a time position after every record of a
// partition starts it at its end: a Read from it gets only what is
// published afterwards, not the partition's history.
func TestReadAtTimeAfterLastRecord(t *testing.T) {
	c := kafkatest.Open(t)
	topic := integration.UniqueName(t, "attime")
	deleteTopic(t, c, topic)
	old := time.Now().Add(-time.Hour)
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "old0", Time: old}, &messaging.Message{ID: "old1", Time: old}); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *messaging.Message, 10)
	sub, err := c.Read(t.Context(), topic, messaging.AtTime(old.Add(30*time.Minute)), func(_ context.Context, m *messaging.Message) error {
		ch <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "new"}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, ch); m.ID != "new" {
		t.Fatalf("Read from a time after the last record delivered %s first, want new (published after Read)", m.ID)
	}
}

// TestAutoCreateOffMissingTopicNotFound: with auto_create=false, Publish and
// PublishAsync to a topic that does not exist, or that another client
// deleted while this one had its partition count cached, fail at once
// with an error wrapping messaging.ErrTopicNotFound, not after
// unavailable_timeout with ErrUnavailable.
func TestAutoCreateOffMissingTopicNotFound(t *testing.T) {
	c := kafkatest.Open(t, "auto_create=false", "metadata_ttl=1h", "unavailable_timeout=8s")
	other := kafkatest.Open(t)
	check := func(what, topic string) {
		t.Helper()
		start := time.Now()
		err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x")))
		if !errors.Is(err, messaging.ErrTopicNotFound) || errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("Publish to %s: %v (after %v), want ErrTopicNotFound", what, err, time.Since(start).Round(time.Millisecond))
		}
		done := make(chan error, 1)
		c.PublishAsync(t.Context(), topic, messaging.NewMessage([]byte("y")), func(_ *messaging.Message, err error) { done <- err })
		if err := <-done; !errors.Is(err, messaging.ErrTopicNotFound) || errors.Is(err, messaging.ErrUnavailable) {
			t.Errorf("PublishAsync to %s: %v (after %v), want ErrTopicNotFound", what, err, time.Since(start).Round(time.Millisecond))
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: failing took %v, want well under unavailable_timeout (8s)", what, d)
		}
	}
	check("a missing topic", integration.UniqueName(t, "nocreate"))

	topic := integration.UniqueName(t, "nocreatedel")
	deleteTopic(t, other, topic)
	if err := c.Provision(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), topic, messaging.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err) // caches the partition count
	}
	if err := other.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	check("a topic another client deleted", topic)
}
