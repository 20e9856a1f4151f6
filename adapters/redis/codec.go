package redis

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Field names of a stream entry written by Publish. Header entries are
// fields named fieldHeaderPrefix + header name.
const (
	fieldID           = "id"
	fieldKey          = "key"
	fieldTime         = "time"
	fieldPayload      = "payload"
	fieldHeaderPrefix = "h:"
)

// encode returns the XADD field/value list of m. The id, key and time
// fields are left out when empty (an ID and a Time are empty only with
// WithCallerIDs), and the time field also when the ID carries m.Time (a
// version 7 UUID, as Publish makes both).
func encode(m *messaging.Message) []any {
	n := 6 + 2*len(m.Header)
	if m.Key != "" {
		n += 2
	}
	v := make([]any, 0, n)
	if m.ID != "" {
		v = append(v, fieldID, m.ID)
	}
	if m.Key != "" {
		v = append(v, fieldKey, m.Key)
	}
	if at, ok := driver.IDTime(m.ID); !m.Time.IsZero() && (!ok || !at.Equal(m.Time)) {
		v = append(v, fieldTime, strconv.FormatInt(m.Time.UnixNano(), 10))
	}
	for k, hv := range m.Header {
		v = append(v, fieldHeaderPrefix+k, hv)
	}
	// Payload last: go-redis writes a []byte without copying it.
	v = append(v, fieldPayload, m.Payload)
	return v
}

// decoder builds a Message from an entry's fields.
type decoder struct {
	m      *messaging.Message
	hasID  bool
	header messaging.Header
}

func newDecoder(topic, entryID string) decoder {
	return decoder{m: &messaging.Message{Topic: topic, Offset: entryID}}
}

// field records one field. Fields this package did not write (entries added
// by other producers) become headers under their own names.
func (d *decoder) field(k, v string) {
	switch k {
	case fieldID:
		d.m.ID, d.hasID = v, true
	case fieldKey:
		d.m.Key = v
	case fieldTime:
		if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
			d.m.Time = time.Unix(0, ns)
		}
	case fieldPayload:
		d.m.Payload = replyBytes(v)
	default:
		if d.header == nil {
			d.header = messaging.Header{}
		}
		if name, ok := strings.CutPrefix(k, fieldHeaderPrefix); ok {
			d.header[name] = v
		} else {
			d.header[k] = v
		}
	}
}

// replyBytes returns the bytes of s, a bulk string of a go-redis reply,
// without copying them. go-redis reads every bulk string into a buffer of
// its own and makes the string from it without a copy
// (proto.Reader.readStringReply), so s is that buffer's only reference but
// for the reply's values, which the decoder's callers drop after decoding:
// the Message owns the bytes, and its handler may change them, as if they
// were copied. The copy was the largest cost of a delivery after the read
// itself (a KiB payload: 10% of the consumer's CPU time and most of its
// garbage). TestPayloadsNotReused checks that a read never hands out the
// bytes of an earlier one. A go-redis hook of a user's client (WithClient)
// that keeps a reply's values would see the handler's changes.
func replyBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// done returns the message. An entry without an id field (not written by
// this package) gets its stream ID as ID. Without a time field, Time is
// the ID's when the ID is a version 7 UUID, else the stream ID's.
func (d *decoder) done() *messaging.Message {
	d.m.Header = d.header
	if !d.hasID {
		d.m.ID = d.m.Offset
	}
	if d.m.Time.IsZero() {
		if at, ok := driver.IDTime(d.m.ID); ok {
			d.m.Time = at
		}
	}
	if d.m.Time.IsZero() {
		if ms, _, err := parseID(d.m.Offset); err == nil {
			d.m.Time = time.UnixMilli(int64(ms))
		}
	}
	return d.m
}

func decodeMap(topic, entryID string, values map[string]any) *messaging.Message {
	d := newDecoder(topic, entryID)
	for k, v := range values {
		s, _ := v.(string)
		d.field(k, s)
	}
	return d.done()
}

// decodeList decodes a flat field/value list, as Lua scripts return it.
func decodeList(topic, entryID string, kv []any) *messaging.Message {
	d := newDecoder(topic, entryID)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		v, _ := kv[i+1].(string)
		d.field(k, v)
	}
	return d.done()
}

// parseID parses a stream entry ID, "<ms>-<seq>" or "<ms>".
func parseID(s string) (ms, seq uint64, err error) {
	msPart, seqPart, hasSeq := strings.Cut(s, "-")
	ms, err = strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	if hasSeq {
		seq, err = strconv.ParseUint(seqPart, 10, 64)
		if err != nil {
			return 0, 0, err
		}
	}
	return ms, seq, nil
}

func formatID(ms, seq uint64) string {
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10)
}

// before returns the greatest ID smaller than ms-seq ("0-0" for the first).
func before(ms, seq uint64) string {
	switch {
	case seq > 0:
		return formatID(ms, seq-1)
	case ms > 0:
		return formatID(ms-1, ^uint64(0))
	}
	return "0-0"
}

func errOffset(p messaging.Position) error {
	return fmt.Errorf("%w: Redis offsets are stream entry IDs like 1700000000000-0, got %v", messaging.ErrInvalidOption, p)
}

// exclusiveStart turns p into the ID that XREAD, XREADGROUP and XGROUP
// CREATE start after (they deliver entries with greater IDs). Latest is
// returned as "$", which the caller resolves where "$" has no meaning.
func exclusiveStart(p messaging.Position) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	switch p.Kind {
	case messaging.PositionEarliest:
		return "0-0", nil
	case messaging.PositionLatest:
		return "$", nil
	case messaging.PositionAtOffset, messaging.PositionAfterOffset:
		ms, seq, err := parseID(p.Offset)
		if err != nil {
			return "", errOffset(p)
		}
		if p.Kind == messaging.PositionAfterOffset {
			return formatID(ms, seq), nil
		}
		return before(ms, seq), nil
	case messaging.PositionAtTime:
		ms := p.Time.UnixMilli()
		if ms <= 0 {
			return "0-0", nil
		}
		return before(uint64(ms), 0), nil
	}
	return "", p.Validate()
}
