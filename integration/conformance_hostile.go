package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// hostileNames are topic and group names every adapter must refuse with
// ErrInvalidTopic: empty, too long, and each character some broker reserves
// (NATS wildcards and separators, Redis hash tags, AMQP and Kafka specials,
// path separators, NUL, white space, non-ASCII).
func hostileNames() []string {
	names := []string{"", strings.Repeat("n", messaging.MaxNameLength+1), ".a", "a.", "a..b", "ä", "a\u200bb"}
	for _, c := range " \t\r\n*>/\\#~:$%{}[]()'\"`!?@&+=,;|^<\x00\x7f" {
		names = append(names, "a"+string(c)+"b")
	}
	return names
}

// hostileInput: every hostile topic, group, header and message gets a typed
// error or an exact round trip, and a canary published after each one is
// still delivered to the group (the subscription, without Groups) that saw
// them all.
func (s *suite) hostileInput(t *testing.T) {
	ctx := t.Context()
	noop := func(context.Context, *messaging.Message) error { return nil }
	for _, bad := range hostileNames() {
		if err := s.c.Publish(ctx, bad, messaging.NewMessage([]byte("x"))); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("Publish to topic %q: %v, want ErrInvalidTopic", bad, err)
		}
		if sub, err := s.c.Subscribe(ctx, bad, noop); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("Subscribe to topic %q: %v, want ErrInvalidTopic", bad, err)
			if err == nil {
				_ = sub.Close()
			}
		}
		if sub, err := s.c.Subscribe(ctx, s.topic, noop, messaging.Group(bad)); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("Subscribe with group %q: %v, want ErrInvalidTopic", bad, err)
			if err == nil {
				_ = sub.Close()
			}
		}
	}

	col := NewCollector()
	s.subscribe(ctx, s.c, col.Handler(), s.groupOpts("hostile")...)
	canaries := 0
	canary := func(after string) {
		t.Helper()
		canaries++
		m := &messaging.Message{ID: fmt.Sprintf("canary-%d", canaries), Payload: []byte("canary")}
		s.publish(s.c, m)
		if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Count(m.ID) > 0 }) {
			t.Fatalf("canary published after %s not delivered within %v", after, s.h.Timeout)
		}
	}
	bigHeaders := messaging.Header{}
	for i := range 9000 {
		bigHeaders[fmt.Sprintf("h%d", i)] = "v"
	}
	type input struct {
		what string
		msgs []*messaging.Message
		want []error // the typed errors allowed; nil: must round-trip exactly
		may  bool    // true: a typed error or an exact round trip
	}
	sizeErrs := []error{messaging.ErrMessageTooLarge, messaging.ErrInvalidOption}
	inputs := []input{
		{what: "a nil message", msgs: []*messaging.Message{nil}, want: []error{messaging.ErrInvalidOption}},
		{what: "a nil message after a good one", msgs: []*messaging.Message{{ID: "before-nil"}, nil}, want: []error{messaging.ErrInvalidOption}},
		{what: "an empty header name", msgs: []*messaging.Message{{Header: messaging.Header{"": "v"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "a 256-byte header name", msgs: []*messaging.Message{{Header: messaging.Header{strings.Repeat("h", 256): "v"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "reserved header msgkit-id", msgs: []*messaging.Message{{Header: messaging.Header{"msgkit-id": "v"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "reserved header X-MSGKIT-TIME", msgs: []*messaging.Message{{Header: messaging.Header{"X-MSGKIT-TIME": "1"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "broker header x-death", msgs: []*messaging.Message{{Header: messaging.Header{"x-death": "v"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "broker header X-Delivery-Count", msgs: []*messaging.Message{{Header: messaging.Header{"X-Delivery-Count": "9"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "broker header x-stream-offset", msgs: []*messaging.Message{{Header: messaging.Header{"x-stream-offset": "0"}}}, want: []error{messaging.ErrInvalidHeader}},
		{what: "binary and control bytes in headers", msgs: []*messaging.Message{{ID: "hdr-bytes", Header: messaging.Header{
			"\xff\xfe": "\x00\xff", "crlf\r\n": "a\r\nb", "nul\x00": "\x00", "colon:": " lead", "trail": "v\t ", "empty": "", "unicode ✓": "héllo",
		}}}},
		{what: "other adapters' field names as headers", msgs: []*messaging.Message{{ID: "hdr-names", Header: messaging.Header{
			"Nats-Msg-Id": "x", "Nats-Expected-Stream": "nope", "Messaging-Key": "k", "Messaging-Encoded": "!!", "Messaging-Time": "t",
			"id": "i", "key": "k", "time": "t", "payload": "p", "h:x": "h", "x-dead-letter-reason": "r", "Content-Type": "a", "content-type": "b",
			"x-match": "all", "x-message-ttl": "1", "x-dead-letter-exchange": "amq.direct", "x-stream-filter-value": "f",
		}}}},
		{what: "hostile IDs and keys", msgs: []*messaging.Message{
			{ID: "id\x00nul", Key: "k\x00"}, {ID: "id\r\nnewline", Key: " spaced "}, {ID: "id-\xff", Key: "\xff\xfe"}, {ID: "id with space", Key: "*.>#"},
		}},
		{what: "a 255-byte ID and key", msgs: []*messaging.Message{{ID: strings.Repeat("i", 255), Key: strings.Repeat("k", 255)}}},
		{what: "a 256-byte ID", msgs: []*messaging.Message{{ID: strings.Repeat("i", 256)}}, want: sizeErrs, may: true},
		{what: "a 1000-byte key", msgs: []*messaging.Message{{ID: "long-key", Key: strings.Repeat("k", 1000)}}, want: sizeErrs, may: true},
		{what: "empty and NUL payloads", msgs: []*messaging.Message{{ID: "p-empty"}, {ID: "p-nul", Payload: []byte{0, 0, 0}}}},
		{what: "9000 headers", msgs: []*messaging.Message{{ID: "many-headers", Header: bigHeaders}}, want: []error{messaging.ErrMessageTooLarge}, may: true},
		{what: "a caller's Time, in its own zone, with nanoseconds", msgs: []*messaging.Message{{ID: "t-ns", Time: time.Date(2021, 3, 4, 5, 6, 7, 891234567, time.FixedZone("UTC+1", 3600))}}},
		{what: "the first Time a broker carries", msgs: []*messaging.Message{{ID: "t-min", Time: time.UnixMilli(1)}}},
		{what: "the last Time a broker carries", msgs: []*messaging.Message{{ID: "t-max", Time: time.Unix(0, math.MaxInt64)}}},
		{what: "a Time before 1970", msgs: []*messaging.Message{{ID: "t-1969", Time: time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)}}, want: []error{messaging.ErrInvalidOption}},
		{what: "the Unix epoch as Time", msgs: []*messaging.Message{{ID: "t-epoch", Time: time.Unix(0, 0)}}, want: []error{messaging.ErrInvalidOption}},
		{what: "a Time after 2262", msgs: []*messaging.Message{{ID: "t-2300", Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}}, want: []error{messaging.ErrInvalidOption}},
		{what: "a 200 KB header value", msgs: []*messaging.Message{{ID: "big-header", Header: messaging.Header{"big": strings.Repeat("v", 200<<10)}}}, want: []error{messaging.ErrMessageTooLarge}, may: true},
	}
	for _, in := range inputs {
		pctx, cancel := context.WithTimeout(ctx, s.h.Timeout)
		err := s.c.Publish(pctx, s.topic, in.msgs...)
		cancel()
		switch {
		case err != nil && !isOneOf(err, in.want):
			t.Errorf("%s: Publish: %v, want one of %v", in.what, err, in.want)
		case err != nil:
			t.Logf("%s: refused: %v", in.what, err)
		case in.want != nil && !in.may:
			t.Errorf("%s: Publish accepted it, want one of %v", in.what, in.want)
		default:
			for _, m := range in.msgs {
				s.expectExact(col, m, in.what)
			}
		}
		canary(in.what)
	}
	if n := col.Count("before-nil"); n != 0 {
		t.Errorf("a message of a call refused for a nil message was delivered")
	}
	s.namesInjective(t)
}

func isOneOf(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// expectExact waits for want and checks that it arrived byte for byte.
func (s *suite) expectExact(col *Collector, want *messaging.Message, what string) {
	t := s.t
	t.Helper()
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Count(want.ID) > 0 }) {
		t.Errorf("%s: message %q accepted but not delivered", what, want.ID)
		return
	}
	for _, m := range col.Messages() {
		if m.ID != want.ID {
			continue
		}
		if m.Key != want.Key || !bytes.Equal(m.Payload, want.Payload) || !sameHeader(m.Header, want.Header) {
			t.Errorf("%s: delivered as key %q payload %q header %q,\nwant key %q payload %q header %q", what, m.Key, m.Payload, short(m.Header), want.Key, want.Payload, short(want.Header))
		}
		// A Time the message had when published (the caller's, or the one
		// Publish set) comes back to the millisecond (Kafka's precision).
		if !want.Time.IsZero() && !m.Time.Truncate(time.Millisecond).Equal(want.Time.Truncate(time.Millisecond)) {
			t.Errorf("%s: delivered with Time %v, want %v", what, m.Time, want.Time)
		}
		return
	}
}

// short keeps error output readable for huge headers.
func short(h messaging.Header) string {
	s := fmt.Sprintf("%q", map[string]string(h))
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// namesInjective: groups "g.x" and "g_x" of one topic each get every
// message, and topics "t.a" and "t_a" share nothing (or the second is
// refused with ErrInvalidTopic, as Kafka does); a maximum-length topic and
// group work.
func (s *suite) namesInjective(t *testing.T) {
	ctx := t.Context()
	dotted, underscored := s.topic+".a", s.topic+"_a"
	long := s.topic + strings.Repeat("x", messaging.MaxNameLength-len(s.topic))
	longGroup := s.group("lg")
	longGroup += strings.Repeat("y", messaging.MaxNameLength-len(longGroup))
	g := s.group("inj")
	if d, ok := s.c.(messaging.TopicDeleter); ok {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, topic := range []string{dotted, underscored, long} {
				_ = d.DeleteTopic(ctx, topic)
			}
		})
	}
	type sub struct {
		topic, group string
		col          *Collector
	}
	subs := []sub{{dotted, g + ".x", NewCollector()}, {dotted, g + "_x", NewCollector()}, {long, longGroup, NewCollector()}, {underscored, g + ".x", NewCollector()}}
	refused := false // the underscored topic
	for i, su := range subs {
		// Without Groups each subscription is one of its own: the topics
		// are still checked, the groups not.
		var groups []string
		var opts []messaging.SubscribeOption
		if s.caps.Groups {
			groups = []string{su.group}
			opts = []messaging.SubscribeOption{messaging.Group(su.group)}
		}
		pctx, cancel := context.WithTimeout(ctx, s.h.Timeout)
		err := messaging.Provision(pctx, s.c, su.topic, groups...)
		cancel()
		if i == 3 && errors.Is(err, messaging.ErrInvalidTopic) && strings.Contains(err.Error(), su.topic) {
			t.Logf("topic %s refused: %v", su.topic, err)
			refused = true
			break
		}
		if err != nil {
			t.Fatalf("Provision %s/%s: %v", su.topic, su.group, err)
		}
		sn, err := s.c.Subscribe(ctx, su.topic, su.col.Handler(), opts...)
		if err != nil {
			t.Fatalf("Subscribe %s/%s: %v", su.topic, su.group, err)
		}
		t.Cleanup(func() { _ = sn.Close() })
	}
	pub := func(topic string, msgs ...*messaging.Message) {
		pctx, cancel := context.WithTimeout(ctx, s.h.Timeout)
		defer cancel()
		if err := s.c.Publish(pctx, topic, msgs...); err != nil {
			t.Fatalf("Publish to %s: %v", topic, err)
		}
	}
	msgs := numbered("inj", 10)
	pub(dotted, msgs...)
	own := &messaging.Message{ID: "own-canary"}
	if !refused {
		pub(underscored, own)
	}
	longMsg := &messaging.Message{ID: "long-name", Payload: []byte("l")}
	pub(long, longMsg)
	// A lost message fails in Report (groups differing in '.' and '_'
	// sharing state); duplicates are at-least-once delivery, only logged.
	for _, su := range subs[:2] {
		su.col.WaitDistinct(t, len(msgs), s.h.Timeout)
		su.col.Report(t, ids(msgs))
	}
	subs[2].col.WaitDistinct(t, 1, s.h.Timeout)
	if subs[2].col.Count(longMsg.ID) == 0 {
		t.Errorf("maximum-length topic and group: message not delivered")
	}
	if refused {
		return
	}
	subs[3].col.WaitDistinct(t, 1, s.h.Timeout)
	if subs[3].col.Distinct() != 1 || subs[3].col.Count(own.ID) == 0 {
		t.Errorf("topic %s got %d messages, want only its own: topics differing in '.' and '_' share state", underscored, subs[3].col.Distinct())
	}
}

// duplicateID: a second, different message reusing an ID is reported with
// ErrDuplicate and not delivered where the adapter claims DedupeByID, and
// is stored and delivered like any other where it does not.
func (s *suite) duplicateID(t *testing.T) {
	col := NewCollector()
	s.subscribe(t.Context(), s.c, col.Handler(), s.groupOpts("dup")...)
	s.publish(s.c, &messaging.Message{ID: "dup-id", Payload: []byte("first")})
	err := s.c.Publish(t.Context(), s.topic, &messaging.Message{ID: "dup-id", Payload: []byte("second")})
	s.publish(s.c, &messaging.Message{ID: "dup-canary"})
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Count("dup-canary") > 0 }) {
		t.Fatal("canary after the duplicate not delivered")
	}
	if s.caps.DedupeByID {
		var pe *messaging.PublishError
		if !errors.As(err, &pe) || !errors.Is(pe.Errs[0], messaging.ErrDuplicate) || messaging.IgnoreDuplicates(err) != nil {
			t.Fatalf("second message with the same ID: %v, want a PublishError with ErrDuplicate", err)
		}
		if n := col.Count("dup-id"); n != 1 {
			t.Fatalf("ID delivered %d times, want once (the first message)", n)
		}
		return
	}
	if err != nil {
		t.Fatalf("second message with the same ID: %v, want nil (the adapter does not claim DedupeByID)", err)
	}
	if !col.Wait(s.h.Timeout, func(c *Collector) bool { return c.Total() >= 3 }) {
		t.Fatalf("without DedupeByID both messages with the same ID must be delivered: %s", col)
	}
}
