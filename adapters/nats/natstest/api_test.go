package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	natsadapter "github.com/msgkit/messaging/adapters/nats"
	"github.com/msgkit/messaging/adapters/nats/natstest"
	"github.com/msgkit/messaging/integration"
)

func TestRequestReply(t *testing.T) {
	for _, mode := range []natsadapter.Mode{natsadapter.ModeCore, natsadapter.ModeJetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			server := natstest.Open(t, natsadapter.WithMode(mode))
			client := natstest.Open(t, natsadapter.WithMode(mode))
			topic := integration.UniqueName(t, "rpc")
			sub, err := server.Serve(t.Context(), topic, func(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
				switch string(req.Payload) {
				case "fail":
					return nil, errors.New("cannot do that")
				case "panic":
					panic("server bug")
				}
				return &messaging.Message{Payload: append([]byte("echo:"), req.Payload...), Key: req.Key, Header: messaging.Header{"seen-id": req.ID, "h": req.Header["h"]}}, nil
			}, messaging.Group("servers"), messaging.Concurrency(4))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Close() })

			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					req := &messaging.Message{Payload: fmt.Appendf(nil, "r%d", i), Key: "k", Header: messaging.Header{"h": " spaced "}}
					rep, err := client.Request(t.Context(), topic, req)
					if err != nil {
						t.Errorf("request %d: %v", i, err)
						return
					}
					if got, want := string(rep.Payload), fmt.Sprintf("echo:r%d", i); got != want {
						t.Errorf("reply %q, want %q", got, want)
					}
					if rep.Header["seen-id"] != req.ID || req.ID == "" || rep.Header["h"] != " spaced " || rep.Key != "k" {
						t.Errorf("reply header %v key %q; request ID %q", rep.Header, rep.Key, req.ID)
					}
				})
			}
			wg.Wait()

			_, err = client.Request(t.Context(), topic, &messaging.Message{Payload: []byte("fail")})
			var re *natsadapter.ReplyError
			if !errors.As(err, &re) || re.Description != "cannot do that" || re.Code != "500" {
				t.Errorf("failing handler: %v, want ReplyError 500 cannot do that", err)
			}
			_, err = client.Request(t.Context(), topic, &messaging.Message{Payload: []byte("panic")})
			if !errors.As(err, &re) || !strings.Contains(re.Description, "server bug") || strings.Contains(re.Description, "goroutine") {
				t.Errorf("panicking handler: %v, want a ReplyError naming the panic without a stack", err)
			}
			_, err = client.Request(t.Context(), integration.UniqueName(t, "nobody"), &messaging.Message{})
			if !errors.Is(err, natsadapter.ErrNoResponders) || !errors.Is(err, messaging.ErrNoResponders) {
				t.Errorf("request to nobody: %v, want ErrNoResponders", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			slow := integration.UniqueName(t, "slow")
			block := make(chan struct{})
			ssub, err := server.Serve(t.Context(), slow, func(ctx context.Context, _ *messaging.Message) (*messaging.Message, error) {
				<-block
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.Request(ctx, slow, &messaging.Message{})
			close(block)
			_ = ssub.Close()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("request past its deadline: %v, want DeadlineExceeded", err)
			}
		})
	}
}

// TestHeadersVerbatim: header entries NATS cannot carry as such (reserved
// names, white space, CR/LF) and odd IDs and keys arrive exactly as sent.
func TestHeadersVerbatim(t *testing.T) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "hdr")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	want := &messaging.Message{
		ID:  "id with\nnewline",
		Key: " key ",
		Header: messaging.Header{
			"Nats-Msg-Id": "user's own", "Messaging-Key": "x", "with space": "v", "colon:name": "v",
			"lead": " v", "trail": "v\t", "crlf": "a\r\nb", "empty": "", "Case": "A", "case": "b",
		},
		Payload: []byte("p"),
	}
	if err := c.Publish(t.Context(), topic, want); err != nil {
		t.Fatal(err)
	}
	st := messaging.Stream(c)
	got := make(chan *messaging.Message, 1)
	sub, err := st.Read(t.Context(), topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var m *messaging.Message
	select {
	case m = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	if m.ID != want.ID || m.Key != want.Key || fmt.Sprint(m.Header) != fmt.Sprint(want.Header) {
		t.Fatalf("got ID %q key %q header %q\nwant ID %q key %q header %q", m.ID, m.Key, m.Header, want.ID, want.Key, want.Header)
	}
}

// TestStatusNamedHeaders: messages without payload whose headers are named
// Status and Description (as a server status is) reach a group
// subscription and a Read with their headers intact; they were taken for
// statuses (never handled, or the consumer restarted on a 503).
func TestStatusNamedHeaders(t *testing.T) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "status")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	want := []*messaging.Message{
		{ID: "s100", Header: messaging.Header{"Status": "100"}},
		{ID: "s503", Header: messaging.Header{"Status": "503", "Description": "No Responders"}},
		{ID: "plain", Payload: []byte("p")},
	}
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, want...); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, len(want), 10*time.Second)
	checkHeaders(t, "group subscription", col.Messages(), want)

	read := integration.NewCollector()
	rs, err := messaging.Stream(c).Read(t.Context(), topic, messaging.Earliest, read.Handler())
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	read.WaitDistinct(t, len(want), 10*time.Second)
	checkHeaders(t, "Read", read.Messages(), want)
}

// TestStatusNamedHeadersFromOtherPublishers: a message without payload
// that carries a plain header Status (another client's, or one published by
// an earlier version of the adapter) reaches a group subscription: a
// delivery has a reply subject, a server status none.
func TestStatusNamedHeadersFromOtherPublishers(t *testing.T) {
	c, topic := publishStatusNamed(t)
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	col.WaitDistinct(t, 4, 10*time.Second)
	checkHeaders(t, "group subscription", col.Messages(), statusNamed)
}

// TestStatusNamedHeadersFromOtherPublishersRead: Read gets past such
// messages too; nats.go's ordered consumer, which Read used, took them for
// statuses and stopped.
func TestStatusNamedHeadersFromOtherPublishersRead(t *testing.T) {
	c, topic := publishStatusNamed(t)
	col := integration.NewCollector()
	sub, err := c.Read(t.Context(), topic, messaging.Earliest, col.Handler())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	col.WaitDistinct(t, 4, 10*time.Second)
	checkHeaders(t, "Read", col.Messages(), statusNamed)
}

// statusNamed is what publishStatusNamed stores, as delivered.
var statusNamed = []*messaging.Message{
	{ID: "raw100", Header: messaging.Header{"Status": "100", "Description": "d"}},
	{ID: "raw503", Header: messaging.Header{"Status": "503", "Description": "d"}},
	{ID: "raw409", Header: messaging.Header{"Status": "409", "Description": "d"}},
	{ID: "plain", Payload: []byte("p")},
}

// publishStatusNamed stores on a new topic (with group g) three messages
// without payload and with a plain header Status, published with nats.go,
// and one with a payload.
func publishStatusNamed(t *testing.T) (*natsadapter.Client, string) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "status")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	if err := c.Provision(t.Context(), topic, "g"); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"100", "503", "409"} {
		raw := &natsgo.Msg{Subject: topic, Header: natsgo.Header{natsgo.MsgIdHdr: {"raw" + code}, "Status": {code}, "Description": {"d"}}}
		if _, err := c.JetStream().PublishMsg(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "plain", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	return c, topic
}

// checkHeaders fails unless got holds each of want (by ID) with its payload
// and header.
func checkHeaders(t *testing.T, what string, got, want []*messaging.Message) {
	t.Helper()
	byID := map[string]*messaging.Message{}
	for _, m := range got {
		byID[m.ID] = m
	}
	for _, w := range want {
		m := byID[w.ID]
		if m == nil {
			t.Errorf("%s: message %s not delivered", what, w.ID)
			continue
		}
		if string(m.Payload) != string(w.Payload) || fmt.Sprint(m.Header) != fmt.Sprint(w.Header) {
			t.Errorf("%s: message %s payload %q header %q, want %q %q", what, w.ID, m.Payload, m.Header, w.Payload, w.Header)
		}
	}
}

// TestPublishDeduplicatesByID: the same ID published twice is stored once,
// and the second Publish says so with ErrDuplicate for each message.
func TestPublishDeduplicatesByID(t *testing.T) {
	c := natstest.Open(t)
	topic := integration.UniqueName(t, "dedupe")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	for i := range 2 {
		err := c.Publish(t.Context(), topic, &messaging.Message{ID: "same"}, &messaging.Message{ID: "other"})
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		var pe *messaging.PublishError
		if i == 1 && (!errors.As(err, &pe) || len(pe.Failed()) != 2 || !errors.Is(pe.Errs[0], messaging.ErrDuplicate) || messaging.IgnoreDuplicates(err) != nil) {
			t.Fatalf("second publish: %v, want ErrDuplicate for both messages", err)
		}
	}
	s, err := c.JetStream().Stream(t.Context(), c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages after publishing 2 IDs twice, want 2", n)
	}
}

func TestOpenURL(t *testing.T) {
	ep := natstest.Broker.Endpoint(t)
	ctx := t.Context()
	c, err := messaging.Open(ctx, ep+"?mode=core&prefetch=10&name=test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Capabilities().Persistent || c.Capabilities().Groups {
		t.Errorf("core mode claims %+v", c.Capabilities())
	}
	_ = c.Close()
	for _, tc := range []struct {
		url  string
		want error
	}{
		{ep + "?typo=1", messaging.ErrInvalidOption},
		{ep + "?mode=fast", messaging.ErrInvalidOption},
		{ep + "?replicas=0", messaging.ErrInvalidOption},
		{ep + "?max_ack_pending=-1", messaging.ErrInvalidOption},
		{ep + "?storage=disk", messaging.ErrInvalidOption},
		{"nats://", messaging.ErrInvalidURL},
		{ep + "/path", messaging.ErrInvalidURL},
		{ep + "?tls_cert=/x", messaging.ErrInvalidOption},
	} {
		if _, err := messaging.Open(ctx, tc.url); !errors.Is(err, tc.want) {
			t.Errorf("Open(%s): %v, want %v", tc.url, err, tc.want)
		}
	}
	// A failed connection is reported without showing the password.
	_, err = messaging.Open(ctx, "nats://someone:s3cr3t-pw@127.0.0.1:1?connect_timeout=1s")
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("Open with an unreachable server: %v, want an error without the password", err)
	}
}

// TestCreatedStreamSettings: the URL parameters about created streams
// (storage, max_age, max_bytes, retention, duplicates) are the settings of
// the stream the Client creates for a topic, and memory storage is not
// claimed Persistent.
func TestCreatedStreamSettings(t *testing.T) {
	ctx := t.Context()
	prefix := integration.UniqueName(t, "S") + "_"
	c, err := natsadapter.Open(ctx, natstest.Broker.Endpoint(t)+"?stream_prefix="+prefix+"&storage=memory&max_age=1h&max_bytes=1048576&retention=interest&duplicates=30s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if c.Capabilities().Persistent {
		t.Errorf("storage=memory claims Persistent")
	}
	topic := integration.UniqueName(t, "settings")
	if err := c.Provision(ctx, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	s, err := c.JetStream().Stream(ctx, c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if !strings.HasPrefix(got.Name, prefix) || got.Storage != jetstream.MemoryStorage || got.MaxAge != time.Hour || got.MaxBytes != 1<<20 ||
		got.Retention != jetstream.InterestPolicy || got.Duplicates != 30*time.Second || got.Replicas != 1 || len(got.Subjects) != 1 || got.Subjects[0] != topic {
		t.Errorf("created stream %s: storage %v, max age %v, max bytes %d, retention %v, duplicates %v, replicas %d, subjects %v; want prefix %s, memory, 1h, 1048576, interest, 30s, 1, [%s]",
			got.Name, got.Storage, got.MaxAge, got.MaxBytes, got.Retention, got.Duplicates, got.Replicas, got.Subjects, prefix, topic)
	}
}

// TestNewWrapsExistingConn: New uses a connection the caller made and
// leaves it open on Close.
func TestNewWrapsExistingConn(t *testing.T) {
	nc, err := natsgo.Connect(natstest.Broker.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := natsadapter.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	topic := integration.UniqueName(t, "legacy")
	// c is closed by the test itself: another client deletes the topic.
	cleaner := natstest.Open(t)
	t.Cleanup(func() {
		if err := cleaner.DeleteTopic(context.Background(), topic); err != nil {
			t.Errorf("deleting topic %s: %v", topic, err)
		}
	})
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler())
	if err != nil {
		t.Fatal(err)
	}
	// A message from legacy code: no adapter headers.
	if _, err := c.JetStream().Publish(t.Context(), topic, []byte("legacy")); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 10*time.Second)
	m := col.Messages()[0]
	if string(m.Payload) != "legacy" || m.ID == "" || m.Time.IsZero() || len(m.Header) != 0 {
		t.Errorf("legacy message delivered as %+v", m)
	}
	_ = sub.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() {
		t.Fatal("Close closed the caller's connection")
	}
	if err := c.Publish(t.Context(), topic, &messaging.Message{}); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
}

// TestExistingStreams: with WithExistingStreams a topic is bound to the
// legacy stream capturing its subject; DeleteTopic leaves that stream.
func TestExistingStreams(t *testing.T) {
	c, prefix, stream, sub := boundGroup(t, "created")
	topic := prefix + ".created"
	if err := c.Publish(t.Context(), prefix+"-uncaptured", &messaging.Message{}); err == nil {
		t.Error("publishing to a subject no stream captures succeeded in bind mode")
	}
	_ = sub.Close()
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	s, err := c.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("legacy stream gone after DeleteTopic: %v", err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("topic's messages not purged: %d left", n)
	}
}

// TestExistingStreamsDeleteTopicEndsGroups: in bind mode DeleteTopic, which
// leaves the stream and deletes the topic's consumers, ends a live group
// subscription with ErrTopicDeleted; it used to take the deleted consumer
// for a transient loss and create it again, running on.
func TestExistingStreamsDeleteTopicEndsGroups(t *testing.T) {
	c, prefix, stream, sub := boundGroup(t, "deleted")
	topic := prefix + ".deleted"
	if err := c.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("group subscription still running 10s after DeleteTopic")
	}
	if err := sub.Err(); !errors.Is(err, messaging.ErrTopicDeleted) {
		t.Fatalf("subscription ended with %v, want ErrTopicDeleted", err)
	}
	if _, err := c.JetStream().Consumer(t.Context(), stream, c.ConsumerName(topic, "g")); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("group's consumer after DeleteTopic: %v, want not found", err)
	}
}

// boundGroup creates a stream capturing prefix.> (deleted by the test's
// cleanup) and a bind-mode client whose subscription of group g of topic
// prefix.name has handled a message (so its pull waits on the server). The
// subscription is closed at cleanup.
func boundGroup(t *testing.T, name string) (c *natsadapter.Client, prefix, stream string, sub messaging.Subscription) {
	return boundSub(t, name, messaging.Group("g"))
}

// boundSub is boundGroup with the subscription's options.
func boundSub(t *testing.T, name string, opts ...messaging.SubscribeOption) (c *natsadapter.Client, prefix, stream string, sub messaging.Subscription) {
	c, topic, stream := boundTopic(t, name)
	prefix = strings.TrimSuffix(topic, "."+name)
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 10*time.Second)
	return c, prefix, stream, sub
}

func jetstreamConfig(name, subject string) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Subjects: []string{subject}}
}

// TestLongNames: the longest topic and group names work in bind mode too,
// where consumer names combine both (store names are kept short).
func TestLongNames(t *testing.T) {
	c := natstest.Open(t)
	long := func(prefix string) string {
		n := integration.UniqueName(t, prefix)
		return n + "." + strings.Repeat("x", messaging.MaxNameLength-len(n)-1)
	}
	topic, group := long("lt"), long("lg")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	col := integration.NewCollector()
	sub, err := c.Subscribe(t.Context(), topic, col.Handler(), messaging.Group(group))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := c.Publish(t.Context(), topic, &messaging.Message{ID: "long"}); err != nil {
		t.Fatal(err)
	}
	col.WaitDistinct(t, 1, 10*time.Second)
	if n := len(natsadapterBind(t).ConsumerName(topic, group)); n > 200 {
		t.Errorf("bind-mode consumer name is %d bytes", n)
	}
}

func natsadapterBind(t *testing.T) *natsadapter.Client {
	return natstest.Open(t, natsadapter.WithExistingStreams())
}

// TestPublishInFlightBound: concurrent Publish calls far larger than the
// in-flight bound all complete and store every message; a call cancelled
// midway frees its slots, so later calls still go through.
func TestPublishInFlightBound(t *testing.T) {
	c := natstest.Open(t, natsadapter.WithMaxInFlight(16))
	topic := integration.UniqueName(t, "inflight")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), topic) })
	const callers, per = 4, 1000
	var wg sync.WaitGroup
	for p := range callers {
		wg.Go(func() {
			msgs := make([]*messaging.Message, per)
			for i := range msgs {
				msgs[i] = &messaging.Message{ID: fmt.Sprintf("p%d-%d", p, i)}
			}
			if err := c.Publish(t.Context(), topic, msgs...); err != nil {
				t.Errorf("caller %d: %v", p, err)
			}
		})
	}
	wg.Wait()
	// A call whose context ends while it waits for slots and acks (on
	// another topic, so the count below stays exact).
	other := integration.UniqueName(t, "cancelled")
	t.Cleanup(func() { _ = c.DeleteTopic(context.Background(), other) })
	if err := c.Provision(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	big := make([]*messaging.Message, 5000)
	for i := range big {
		big[i] = &messaging.Message{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	err := c.Publish(ctx, other, big...)
	cancel()
	var pe *messaging.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish of 5000 with a 1ms context: %v, want a PublishError with DeadlineExceeded", err)
	}
	for range 3 { // more than the bound: leaked slots would block these
		msgs := make([]*messaging.Message, 16)
		for i := range msgs {
			msgs[i] = &messaging.Message{}
		}
		tctx, tcancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := c.Publish(tctx, topic, msgs...)
		tcancel()
		if err != nil {
			t.Fatalf("Publish after a cancelled one: %v", err)
		}
	}
	s, err := c.JetStream().Stream(t.Context(), c.StreamName(topic))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.CachedInfo().State.Msgs, uint64(callers*per+3*16); got != want {
		t.Fatalf("stream holds %d messages, want %d", got, want)
	}
}
