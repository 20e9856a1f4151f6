package rabbitmq

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Headers the adapter adds to every message. Header names starting with
// "x-msgkit-" are reserved for the adapter; the broker reserves the ones in
// brokerHeaders.
const (
	hdrTime    = "x-msgkit-time"          // publish time, Unix nanoseconds, when the ID does not carry it
	hdrKey     = "x-msgkit-key"           // Key, when the routing key no longer carries it (delayed retry)
	hdrAttempt = "x-msgkit-attempt"       // deliveries before a delayed retry
	hdrDeleted = "x-msgkit-topic-deleted" // marks the message DeleteTopic sends before deleting a topic (see tellDeleted)
	hdrPrefix  = "x-msgkit-"

	// hdrRenamed prefixes, on the wire, an application header whose own
	// name RabbitMQ would take for routing (routingHeaders).
	hdrRenamed = "x-msgkit-header-"
)

// routingHeaders are the header names RabbitMQ reads at publish as extra
// routing keys (sender-selected distribution: "CC", "BCC", exactly so).
// It refuses a string there, closing the channel ("PRECONDITION_FAILED -
// invalid message: {unacceptable_type_in_header,...}"), and would strip
// BCC from the message it stores. So such an application header travels
// as hdrRenamed+name and a consumer of this package gives it back under
// its own name: carried verbatim, as messaging.Header promises.
var routingHeaders = map[string]bool{"CC": true, "BCC": true}

// brokerHeaders are headers RabbitMQ adds on delivery; they are not shown in
// Message.Header.
var brokerHeaders = map[string]bool{
	"x-delivery-count":       true,
	"x-death":                true,
	"x-first-death-exchange": true,
	"x-first-death-queue":    true,
	"x-first-death-reason":   true,
	"x-last-death-exchange":  true,
	"x-last-death-queue":     true,
	"x-last-death-reason":    true,
	"x-stream-offset":        true,
}

// maxShortString is AMQP's limit on exchange and queue names, routing keys
// and message IDs.
const maxShortString = 255

// validTopic checks a topic name: messaging.ValidateName, and not starting
// with "amq.", which RabbitMQ reserves for its own exchanges and queues.
func validTopic(topic string) error {
	if err := messaging.ValidateName(topic); err != nil {
		return err
	}
	if strings.HasPrefix(topic, "amq.") {
		return fmt.Errorf("%w: %q: RabbitMQ reserves names starting with \"amq.\"", messaging.ErrInvalidTopic, topic)
	}
	return nil
}

// queueName joins parts with '~', a character topic and group names cannot
// contain, so names never collide; a name longer than AMQP allows is cut and
// given a hash suffix.
func queueName(parts ...string) string {
	s := strings.Join(parts, "~")
	if len(s) <= maxShortString {
		return s
	}
	h := sha256.Sum256([]byte(s))
	return s[:maxShortString-17] + "~" + hex.EncodeToString(h[:8])
}

// groupQueue is the quorum queue of a group: "<topic>~<group>".
func groupQueue(topic, group string) string { return queueName(topic, group) }

// streamQueue is the stream queue recording a topic: "<topic>~~stream".
func streamQueue(topic string) string { return queueName(topic, "", "stream") }

// registryQueue lists the queues created for a topic: "<topic>~~queues".
func registryQueue(topic string) string { return queueName(topic, "", "queues") }

// delayQueue holds a group's messages for one retry delay:
// "<topic>~<group>~~retry-<ms>ms".
func delayQueue(topic, group string, d time.Duration) string {
	return queueName(topic, group, "", "retry-"+strconv.FormatInt(d.Milliseconds(), 10)+"ms")
}

// publishing converts m for sending; its routing key is m.Key.
func publishing(m *messaging.Message) (amqp.Publishing, error) {
	if len(m.Key) > maxShortString {
		return amqp.Publishing{}, fmt.Errorf("%w: key is %d bytes, AMQP routing keys hold at most %d", messaging.ErrInvalidOption, len(m.Key), maxShortString)
	}
	if len(m.ID) > maxShortString {
		return amqp.Publishing{}, fmt.Errorf("%w: ID is %d bytes, AMQP message IDs hold at most %d", messaging.ErrInvalidOption, len(m.ID), maxShortString)
	}
	var h amqp.Table
	if len(m.Header) > 0 {
		h = make(amqp.Table, len(m.Header)+1)
	}
	for k, v := range m.Header {
		if strings.HasPrefix(k, hdrPrefix) || brokerHeaders[k] {
			return amqp.Publishing{}, fmt.Errorf("%w: header %q is reserved (x-msgkit-* and RabbitMQ's x-death, x-delivery-count, x-stream-offset...)", messaging.ErrInvalidHeader, k)
		}
		if routingHeaders[k] {
			k = hdrRenamed + k
		}
		h[k] = v
	}
	// AMQP timestamps have seconds. The rest of Time travels in the ID when
	// Publish made both (a version 7 UUID starts with its time); otherwise
	// in a header.
	if at, ok := driver.IDTime(m.ID); !ok || !at.Equal(m.Time) {
		if h == nil {
			h = make(amqp.Table, 1)
		}
		h[hdrTime] = m.Time.UnixNano()
	}
	return amqp.Publishing{
		Headers:      h,
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Timestamp:    m.Time,
		Body:         m.Payload,
	}, nil
}

// message converts a delivery. Attempt is left to the caller.
func message(d *amqp.Delivery, topic string) *messaging.Message {
	m := &messaging.Message{
		ID:      d.MessageId,
		Key:     d.RoutingKey,
		Payload: d.Body,
		Topic:   topic,
		Time:    d.Timestamp,
	}
	// A version 7 UUID ID carries the publish time more precisely than the
	// AMQP timestamp; it is taken when the two agree to the second (an ID
	// made by another publisher may mean something else).
	if at, ok := driver.IDTime(d.MessageId); ok && at.Unix() == d.Timestamp.Unix() {
		m.Time = at
	}
	for k, v := range d.Headers {
		switch {
		case k == hdrTime:
			if n, ok := v.(int64); ok {
				m.Time = time.Unix(0, n)
			}
		case k == hdrKey:
			if s, ok := v.(string); ok {
				m.Key = s
			}
		case strings.HasPrefix(k, hdrRenamed) && routingHeaders[k[len(hdrRenamed):]]:
			if s, ok := v.(string); ok {
				if m.Header == nil {
					m.Header = make(messaging.Header, len(d.Headers))
				}
				m.Header[k[len(hdrRenamed):]] = s
			}
		case strings.HasPrefix(k, hdrPrefix), brokerHeaders[k]:
		default:
			if m.Header == nil {
				m.Header = make(messaging.Header, len(d.Headers))
			}
			switch v := v.(type) {
			case string:
				m.Header[k] = v
			case []byte:
				m.Header[k] = string(v)
			default:
				m.Header[k] = fmt.Sprint(v)
			}
		}
	}
	return m
}

// headerInt reads an integer header of any AMQP integer type.
func headerInt(t amqp.Table, name string) (int64, bool) {
	switch v := t[name].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case int:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	}
	return 0, false
}

// maxHeaderEntries is the most header entries amqp091-go decodes in one
// table (its maxContainerElements): a consumer given a message with more
// drops its connection (and the message comes back, again and again).
const maxHeaderEntries = 8192

// frameOverhead is a frame's type, channel, size and end octet.
const frameOverhead = 8

// checkFrame refuses, with ErrMessageTooLarge naming the limit, a message
// a consumer could not receive: more header entries than amqp091-go
// decodes, or properties (headers included) that do not fit in one frame
// of frameMax bytes. AMQP sends the body in as many frames as it needs,
// but the content header in exactly one; the broker closes the connection
// of a publisher sending a larger one.
func checkFrame(p amqp.Publishing, frameMax int) error {
	if n := len(p.Headers); n > maxHeaderEntries {
		return fmt.Errorf("%w: %d header entries, AMQP clients (amqp091-go) decode at most %d", messaging.ErrMessageTooLarge, n, maxHeaderEntries)
	}
	if frameMax <= 0 {
		return nil
	}
	if n := contentHeaderSize(p); n > frameMax-frameOverhead {
		return fmt.Errorf("%w: headers and properties take %d bytes; AMQP sends them in one frame, and frame_max is %d bytes", messaging.ErrMessageTooLarge, n+frameOverhead, frameMax)
	}
	return nil
}

// contentHeaderSize is the size of p's content header frame payload (class,
// weight, body size, property flags and the properties Publish sets).
func contentHeaderSize(p amqp.Publishing) int {
	n := 2 + 2 + 8 + 2 // class, weight, body size, flags
	if p.Headers != nil {
		n += 4
		for k, v := range p.Headers {
			n += 1 + len(k) + 1
			switch v := v.(type) {
			case string:
				n += 4 + len(v)
			case []byte:
				n += 4 + len(v)
			default:
				n += 8
			}
		}
	}
	n += 1 + 8 // delivery mode, timestamp
	if p.MessageId != "" {
		n += 1 + len(p.MessageId)
	}
	return n
}

// HeaderFrameSize returns the size in bytes of the content header frame
// Publish sends for m as it is (ID and Time as set; Publish fills empty
// ones first). AMQP carries a message's properties and headers in one such
// frame, so a message whose frame exceeds the connection's frame_max cannot
// be published (Publish fails with messaging.ErrMessageTooLarge). The error
// is that of an invalid header.
func HeaderFrameSize(m *messaging.Message) (int, error) {
	p, err := publishing(m)
	if err != nil {
		return 0, err
	}
	return contentHeaderSize(p) + frameOverhead, nil
}

// GroupQueueName returns the name of the quorum queue that holds a group's
// messages of topic, for operators and tests that inspect it directly.
func GroupQueueName(topic, group string) string { return groupQueue(topic, group) }
