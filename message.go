package messaging

import (
	"maps"
	"time"
)

// Header holds application metadata carried with a message. Every adapter
// carries it verbatim: the consumer sees exactly the entries the publisher set,
// no more and no fewer. Keys are case-sensitive.
type Header map[string]string

// Message is the unit of publishing and delivery.
//
// The first four fields are set by the publisher. The remaining fields are
// delivery fields: a Consumer or Stream fills them in; a Publisher ignores
// them, except Time, which it keeps when set.
type Message struct {
	// ID identifies the message for deduplication and tracing. When empty,
	// Publish sets it to a new unique ID before sending, so after Publish
	// returns the caller can read it: a version 7 UUID, which starts with its
	// creation time, so IDs of one process sort in creation order. IDs are
	// carried verbatim.
	ID string

	// Key is the ordering and partitioning key. Messages with the same non-empty
	// key are delivered in publish order to the handler where the adapter's
	// capabilities include PerKeyOrder. An empty key makes no ordering promise.
	Key string

	// Payload is the message body; it may be empty and may hold any bytes.
	Payload []byte

	// Header is application metadata, carried verbatim.
	Header Header

	// Topic is the topic the message was published to.
	Topic string

	// Group is the consumer group the message was delivered to; empty for
	// group-less reads.
	Group string

	// Attempt is 1 on the first delivery and counts deliveries after that.
	// Where the broker counts deliveries (JetStream, Redis pending entries,
	// RabbitMQ quorum queues) the count survives consumer restarts.
	Attempt int

	// Time is the publish time. Publish sets it to the current time when zero
	// (to the time in the new ID when it sets ID too, so the two agree).
	Time time.Time

	// Offset is the broker's position of this message in its log, in the
	// adapter's documented format, usable with AtOffset and AfterOffset. It is
	// empty where the broker keeps no log (core NATS).
	Offset string
}

// NewMessage returns a message with the given payload and no ID; Publish
// assigns one.
func NewMessage(payload []byte) *Message {
	return &Message{Payload: payload}
}

// Clone returns a deep copy of m: payload and header are copied, so the copy
// can be changed without touching the original.
func (m *Message) Clone() *Message {
	c := *m
	if m.Payload != nil {
		c.Payload = append([]byte(nil), m.Payload...)
	}
	if m.Header != nil {
		c.Header = maps.Clone(m.Header)
	}
	return &c
}

// Size is the number of bytes counted against an adapter's maximum message
// size: the payload plus the ID, key and header names and values.
func (m *Message) Size() int {
	n := len(m.Payload) + len(m.ID) + len(m.Key)
	for k, v := range m.Header {
		n += len(k) + len(v)
	}
	return n
}
