package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/msgkit/messaging"
)

// Record headers the adapter reserves for the message's own fields.
const (
	// HeaderPrefix starts every header name the adapter reserves; Publish
	// rejects application headers that start with it.
	HeaderPrefix = "msgkit-"
	headerID     = HeaderPrefix + "id"
	headerTime   = HeaderPrefix + "time"
)

// toRecord converts a prepared message into a kafka-go message for topic.
func toRecord(topic string, m *messaging.Message) (kafkago.Message, error) {
	hs := make([]kafkago.Header, 0, len(m.Header)+2)
	hs = append(hs,
		kafkago.Header{Key: headerID, Value: []byte(m.ID)},
		kafkago.Header{Key: headerTime, Value: strconv.AppendInt(nil, m.Time.UnixNano(), 10)},
	)
	for k, v := range m.Header {
		if strings.HasPrefix(k, HeaderPrefix) {
			return kafkago.Message{}, fmt.Errorf("%w: header %q: names starting with %q are reserved by the Kafka adapter", messaging.ErrInvalidOption, k, HeaderPrefix)
		}
		hs = append(hs, kafkago.Header{Key: k, Value: []byte(v)})
	}
	rec := kafkago.Message{Topic: topic, Value: m.Payload, Headers: hs, Time: m.Time}
	if m.Key != "" {
		rec.Key = []byte(m.Key)
	}
	return rec, nil
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
	return strconv.Itoa(partition) + ":" + strconv.FormatInt(offset, 10)
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
