package messaging

import (
	"fmt"
	"maps"
	"strings"
	"time"
)

// Header holds application metadata carried with a message. Every adapter
// carries it verbatim: the consumer sees exactly the entries the publisher
// set, no more and no fewer, byte for byte. Keys are case-sensitive. Names
// and values may hold any bytes (not only UTF-8: NUL, CR, LF, ':' and white
// space too), with the exceptions ValidateHeader states; Publish rejects a
// header breaking them with ErrInvalidHeader before sending anything. The
// rule is the same on every adapter.
type Header map[string]string

// MaxHeaderNameLength is the longest header name accepted (AMQP's limit on
// table field names).
const MaxHeaderNameLength = 255

// reservedHeaderPrefixes start header names the adapters use for their own
// fields; brokerHeaders are names RabbitMQ sets on delivery, which a
// consumer could not tell from the publisher's.
var (
	reservedHeaderPrefixes = []string{"msgkit-", "x-msgkit-"}
	brokerHeaders          = map[string]bool{
		"x-death": true, "x-delivery-count": true, "x-stream-offset": true,
		"x-first-death-exchange": true, "x-first-death-queue": true, "x-first-death-reason": true,
		"x-last-death-exchange": true, "x-last-death-queue": true, "x-last-death-reason": true,
	}
)

// ValidateHeader reports an error wrapping ErrInvalidHeader unless every
// entry of h can be carried verbatim by every adapter: a name is 1 to
// MaxHeaderNameLength bytes, does not start with "msgkit-" or "x-msgkit-"
// (any case; reserved for the adapters' own fields) and is not one RabbitMQ
// sets on delivery (x-death, x-delivery-count, x-stream-offset,
// x-first-death-*, x-last-death-*). Values are unrestricted. Adapters also
// bound the total size (ErrMessageTooLarge, naming the limit).
func ValidateHeader(h Header) error {
	for k := range h {
		if err := validateHeaderName(k); err != nil {
			return err
		}
	}
	return nil
}

func validateHeaderName(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: empty name", ErrInvalidHeader)
	case len(k) > MaxHeaderNameLength:
		return fmt.Errorf("%w: name %q... is %d bytes, at most %d allowed", ErrInvalidHeader, k[:32], len(k), MaxHeaderNameLength)
	}
	l := strings.ToLower(k)
	for _, p := range reservedHeaderPrefixes {
		if strings.HasPrefix(l, p) {
			return fmt.Errorf("%w: %q: names starting with %q are reserved for the adapters", ErrInvalidHeader, k, p)
		}
	}
	if brokerHeaders[l] {
		return fmt.Errorf("%w: %q is set by RabbitMQ on delivery", ErrInvalidHeader, k)
	}
	return nil
}

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
	// carried verbatim. Adapters that do not claim
	// Capabilities.PublishAssignsID (core NATS) leave it empty and send
	// none; a consumer then gets a unique ID generated on delivery, which
	// only that delivery carries. A delivered message always has an ID.
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
	// Adapters that do not claim Capabilities.PublishAssignsID leave it zero
	// and send none; a consumer then gets the time the message was received.
	// A delivered message always has a Time. A Time set is carried to the
	// millisecond at least (to the nanosecond except on Kafka); Publish
	// fails with ErrInvalidOption on one before 1970-01-01T00:00:00.001Z
	// or after 2262-04-11T23:47:16.854775807Z, which brokers cannot carry
	// (Unix milli- or nanoseconds).
	Time time.Time

	// Offset is the broker's position of this message in its log, in the
	// adapter's documented format, usable with AtOffset and AfterOffset. It is
	// empty where the broker keeps no log (core NATS).
	Offset string
}

// NewMessage returns a message with the given payload and no ID; Publish
// assigns one (where the adapter claims Capabilities.PublishAssignsID).
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
