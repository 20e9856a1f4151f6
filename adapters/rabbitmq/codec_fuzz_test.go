package rabbitmq

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
)

// FuzzCodec: any message Publish accepts comes back from its delivery byte
// for byte (the AMQP timestamp has seconds; the rest travels in the ID or
// a header).
func FuzzCodec(f *testing.F) {
	f.Add("id-1", "", "name", "value", []byte("payload"), int64(1700000000123456789))
	f.Add("0190f0f0-0000-7000-8000-000000000000", "k\r\n", "x-first-death-queuex", "\x00", []byte{0}, int64(0))
	// A version 7 ID whose time is not the message's: the time travels in
	// the header.
	f.Add("0190f0f0-0000-7000-8000-000000000000", "", "name", "value", []byte("p"), int64(1700000000123456789))
	f.Fuzz(func(t *testing.T, id, key, name, value string, payload []byte, ns int64) {
		m := &messaging.Message{ID: id, Key: key, Payload: payload, Header: messaging.Header{name: value}, Time: time.Unix(0, ns)}
		if id == "" || messaging.ValidateHeader(m.Header) != nil {
			return
		}
		p, err := publishing(m)
		if err != nil {
			if len(id) > maxShortString || len(key) > maxShortString {
				return
			}
			t.Fatalf("publishing: %v", err)
		}
		d := amqp.Delivery{Headers: p.Headers, MessageId: p.MessageId, RoutingKey: m.Key, Body: p.Body, Timestamp: time.Unix(p.Timestamp.Unix(), 0)}
		got := message(&d, "t")
		if got.ID != m.ID || got.Key != m.Key || !got.Time.Equal(m.Time) || !bytes.Equal(got.Payload, m.Payload) || !maps.Equal(got.Header, m.Header) {
			t.Fatalf("got %+v\nwant %+v", got, m)
		}
	})
}

// FuzzQueueName: queue names of different (topic, group) pairs differ, and
// fit AMQP's 255 bytes.
func FuzzQueueName(f *testing.F) {
	f.Add("a.b", "g", "a_b", "g")
	f.Add("t", "g.x", "t", "g_x")
	f.Fuzz(func(t *testing.T, t1, g1, t2, g2 string) {
		for _, n := range []string{t1, g1, t2, g2} {
			if messaging.ValidateName(n) != nil {
				return
			}
		}
		q1, q2 := groupQueue(t1, g1), groupQueue(t2, g2)
		if (t1 != t2 || g1 != g2) && q1 == q2 {
			t.Fatalf("%s/%s and %s/%s share queue %s", t1, g1, t2, g2, q1)
		}
		if len(q1) > maxShortString || strings.HasPrefix(q1, "amq.") && !strings.HasPrefix(t1, "amq.") {
			t.Fatalf("queue name %q", q1)
		}
	})
}

// TestCheckFrameHeaderEntries: checkFrame takes the 8192 header entries
// amqp091-go decodes and refuses one more with ErrMessageTooLarge.
func TestCheckFrameHeaderEntries(t *testing.T) {
	for _, c := range []struct {
		n       int
		refused bool
	}{{maxHeaderEntries, false}, {maxHeaderEntries + 1, true}} {
		h := make(amqp.Table, c.n)
		for i := range c.n {
			h[fmt.Sprint("h", i)] = "v"
		}
		err := checkFrame(amqp.Publishing{Headers: h}, 0)
		if refused := errors.Is(err, messaging.ErrMessageTooLarge); refused != c.refused || (!c.refused && err != nil) {
			t.Errorf("%d header entries: %v, refused with ErrMessageTooLarge: %v, want %v", c.n, err, refused, c.refused)
		}
	}
}
