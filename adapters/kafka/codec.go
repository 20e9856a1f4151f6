package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Record headers the adapter reserves for the message's own fields.
const (
	// HeaderPrefix starts every header name the adapter reserves; Publish
	// rejects application headers that start with it.
	HeaderPrefix = "msgkit-"
	headerID     = HeaderPrefix + "id"
	// headerTime is read, never written: Time travels as the record
	// timestamp (milliseconds), which costs no extra bytes per record.
	headerTime = HeaderPrefix + "time"
)

// toRecord converts a prepared message into a kafka-go message for topic.
func toRecord(topic string, m *messaging.Message) (kafkago.Message, error) {
	recs, err := toRecords(topic, []*messaging.Message{m})
	if err != nil {
		return kafkago.Message{}, err
	}
	return recs[0], nil
}

// toRecords converts prepared messages into kafka-go messages for topic.
// Whatever the number of records, keys and headers, a call makes three
// allocations: the records, their headers, and one byte buffer holding the
// IDs, keys and header values (kafka-go wants []byte where messages have
// strings). Fields are set in place: building each record as a value and
// copying it into the slice costs a bulk write barrier per record while the
// garbage collector runs.
func toRecords(topic string, msgs []*messaging.Message) ([]kafkago.Message, error) {
	nh, nb := 0, 0
	for _, m := range msgs {
		nh += len(m.Header)
		if m.ID != "" {
			nh++
		}
		nb += len(m.ID) + len(m.Key)
		for _, v := range m.Header {
			nb += len(v)
		}
	}
	hdrs := make([]kafkago.Header, nh)
	buf := make([]byte, 0, nb)
	recs := make([]kafkago.Message, len(msgs))
	h := 0
	for i, m := range msgs {
		h0 := h
		if m.ID != "" { // none with WithCallerIDs, when the caller set none
			buf, hdrs[h].Value = appendBytes(buf, m.ID)
			hdrs[h].Key = headerID
			h++
		}
		for k, v := range m.Header {
			if strings.HasPrefix(k, HeaderPrefix) {
				return nil, fmt.Errorf("kafka: %s%w: header %q: names starting with %q are reserved by the Kafka adapter", driver.Nth(i, len(msgs)), messaging.ErrInvalidHeader, k, HeaderPrefix)
			}
			hdrs[h].Key = k
			buf, hdrs[h].Value = appendBytes(buf, v)
			h++
		}
		r := &recs[i]
		r.Topic = topic
		r.Value = m.Payload
		r.Headers = hdrs[h0:h:h]
		r.Time = m.Time
		if m.Key != "" {
			buf, r.Key = appendBytes(buf, m.Key)
		}
	}
	return recs, nil
}

// appendBytes appends s to buf (which has room for it) and returns buf and
// the appended bytes, capped so that appending to them cannot reach into
// what follows.
func appendBytes(buf []byte, s string) ([]byte, []byte) {
	n := len(buf)
	buf = append(buf, s...)
	return buf, buf[n:len(buf):len(buf)]
}

// fromRecord converts a fetched record into a delivery. Records produced by
// other clients have no ID header: their ID is then "topic/partition/offset",
// stable across redeliveries.
func fromRecord(r *kafkago.Message, group string, attempt int) *messaging.Message {
	m := &messaging.Message{
		Key:     string(r.Key),
		Payload: r.Value,
		Topic:   r.Topic,
		Group:   group,
		Attempt: attempt,
		Time:    r.Time,
		Offset:  formatOffset(r.Partition, r.Offset),
	}
	for _, h := range r.Headers {
		switch h.Key {
		case headerID:
			m.ID = string(h.Value)
		case headerTime:
			if ns, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				m.Time = time.Unix(0, ns)
			}
		default:
			if m.Header == nil {
				m.Header = make(messaging.Header, len(r.Headers))
			}
			m.Header[h.Key] = string(h.Value)
		}
	}
	if m.ID == "" {
		m.ID = r.Topic + "/" + strconv.Itoa(r.Partition) + "/" + strconv.FormatInt(r.Offset, 10)
	}
	return m
}

// formatOffset is the Message.Offset of a record: "partition:offset".
func formatOffset(partition int, offset int64) string {
	var b [41]byte // builds the string with one allocation
	buf := strconv.AppendInt(b[:0], int64(partition), 10)
	buf = append(buf, ':')
	return string(strconv.AppendInt(buf, offset, 10))
}

// parseOffsets parses a Position offset: "partition:offset", or several of
// them separated by commas ("0:17,1:4"), into a map partition -> offset.
func parseOffsets(s string) (map[int]int64, error) {
	out := map[int]int64{}
	for part := range strings.SplitSeq(s, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(part), ":")
		p, perr := strconv.Atoi(ps)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("%w: Kafka offset %q: want partition:offset (e.g. 0:42), or a comma-separated list of them", messaging.ErrInvalidOption, s)
		}
		if _, dup := out[p]; dup {
			return nil, fmt.Errorf("%w: Kafka offset %q: partition %d given twice", messaging.ErrInvalidOption, s, p)
		}
		out[p] = o
	}
	return out, nil
}
