package nats

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// NATS headers the adapter sets. Consumers do not see them in
// Message.Header: they become ID, Key and Time.
const (
	// HeaderMsgID is the JetStream deduplication header; it carries
	// Message.ID, or, for an ID NATS headers cannot carry verbatim or that
	// starts with a double quote, the ID quoted as strconv.QuoteToASCII
	// quotes it (the ID itself then travels in HeaderEncoded), so that
	// distinct IDs never share a Nats-Msg-Id.
	HeaderMsgID = natsgo.MsgIdHdr // "Nats-Msg-Id"
	// HeaderKey carries Message.Key when it is not empty.
	HeaderKey = "Messaging-Key"
	// HeaderTime carries Message.Time as Unix nanoseconds in decimal. It
	// is left out when the ID carries that time (a version 7 UUID, as
	// Publish makes both), and the consumer takes Time from the ID.
	HeaderTime = "Messaging-Time"
	// HeaderEncoded carries the ID, key and header entries that NATS
	// headers cannot carry verbatim (names other than printable ASCII
	// without ':', the double quote and the separators ()/,;<=>?@[\]{}
	// that nats.go refuses in a name; names starting with "Nats-" or
	// "Messaging-"; the names Status and Description, which nats.go reads
	// as a server status on a message without payload; values that are
	// not UTF-8, hold control characters such as CR or LF, or start or end
	// with white space), so every header reaches the consumer byte for
	// byte as published.
	// Format: standard base64 of a sequence of entries, each a tag byte
	// ('i' ID, 'k' key, 'h' header) and its strings (one, or name and value
	// for 'h'), each a uvarint length and its bytes.
	HeaderEncoded = "Messaging-Encoded"

	// Headers of a reply whose server failed, as the NATS micro framework
	// writes them.
	headerServiceError     = "Nats-Service-Error"
	headerServiceErrorCode = "Nats-Service-Error-Code"
)

// hdrOverhead is the header block's fixed wire size ("NATS/1.0\r\n" and the
// final "\r\n"); each entry adds len(name)+len(value)+4 (": " and "\r\n").
const hdrOverhead = 12

// maxStoredHeader is the largest header block JetStream stores
// (math.MaxUint16 bytes); it refuses larger ones after receiving them.
const maxStoredHeader = 65535

// sizeSlack is what MaxMessageSize keeps below the server's max_payload for
// the adapter's own headers and the separators of user headers, which
// Message.Size does not count. A message whose encoding still exceeds
// max_payload (hundreds of tiny headers) fails with ErrMessageTooLarge too.
const sizeSlack = 512

// legacyEncoded is the JSON form of HeaderEncoded that earlier versions
// wrote (it replaced bytes that are not UTF-8); it is still read.
type legacyEncoded struct {
	ID     string            `json:"i,omitempty"`
	Key    string            `json:"k,omitempty"`
	Header map[string]string `json:"h,omitempty"`
}

// Tags of HeaderEncoded entries.
const (
	tagID     = 'i'
	tagKey    = 'k'
	tagHeader = 'h'
)

// appendEncoded appends one HeaderEncoded entry.
func appendEncoded(b []byte, tag byte, strs ...string) []byte {
	b = append(b, tag)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeEncoded reads HeaderEncoded entries into m and user; it reports
// false for a value this package did not write.
func decodeEncoded(b []byte, m *messaging.Message, user messaging.Header) bool {
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	for len(b) > 0 {
		tag := b[0]
		b = b[1:]
		s, ok := str()
		if !ok {
			return false
		}
		switch tag {
		case tagID:
			m.ID = s
		case tagKey:
			m.Key = s
		case tagHeader:
			v, ok := str()
			if !ok {
				return false
			}
			user[s] = v
		default:
			return false
		}
	}
	return true
}

// unsafeNameChars are the printable ASCII characters nats.go refuses in a
// header name (its publish fails with ErrBadHeaderMsg): ':' as NATS, and
// the separators it rejects besides.
const unsafeNameChars = "\"()/,:;<=>?@[\\]{}"

// safeName reports whether k can be a NATS header name verbatim.
func safeName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(unsafeNameChars, c) >= 0 {
			return false
		}
	}
	if k == "Status" || k == "Description" {
		return false // a bodiless message with them reads as a server status
	}
	l := strings.ToLower(k)
	return !strings.HasPrefix(l, "nats-") && !strings.HasPrefix(l, "messaging-")
}

func safeValue(v string) bool {
	if v == "" {
		return true
	}
	if c := v[0]; c == ' ' || c == '\t' {
		return false
	}
	if c := v[len(v)-1]; c == ' ' || c == '\t' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(v)
}

// encode turns m into a NATS message for subject and checks its wire size
// against maxPayload (when > 0) and the size of its header block against
// maxHeader (when > 0; maxStoredHeader for JetStream).
func encode(subject string, m *messaging.Message, maxPayload, maxHeader int64) (*natsgo.Msg, error) {
	h := make(natsgo.Header, len(m.Header)+3)
	var enc []byte
	size := int64(len(m.Payload) + hdrOverhead)
	set := func(k, v string) {
		h[k] = []string{v}
		size += int64(len(k) + len(v) + 4)
	}
	switch {
	case m.ID == "": // core mode: none given, none sent
	case safeValue(m.ID) && m.ID[0] != '"':
		set(HeaderMsgID, m.ID)
	default:
		// Quoted, still unique for deduplication: no ID goes verbatim
		// with the quote a quoted one starts with.
		enc = appendEncoded(enc, tagID, m.ID)
		set(HeaderMsgID, strconv.QuoteToASCII(m.ID))
	}
	if m.Key != "" {
		if safeValue(m.Key) {
			set(HeaderKey, m.Key)
		} else {
			enc = appendEncoded(enc, tagKey, m.Key)
		}
	}
	if !m.Time.IsZero() {
		if at, ok := driver.IDTime(m.ID); !ok || !at.Equal(m.Time) {
			set(HeaderTime, strconv.FormatInt(m.Time.UnixNano(), 10))
		}
	}
	for k, v := range m.Header {
		if safeName(k) && safeValue(v) {
			set(k, v)
			continue
		}
		enc = appendEncoded(enc, tagHeader, k, v)
	}
	if enc != nil {
		set(HeaderEncoded, base64.StdEncoding.EncodeToString(enc))
	}
	if maxPayload > 0 && size > maxPayload {
		return nil, fmt.Errorf("nats: message %s is %d bytes with its headers, server max_payload %d: %w", m.ID, size, maxPayload, messaging.ErrMessageTooLarge)
	}
	if hdr := size - int64(len(m.Payload)); maxHeader > 0 && hdr > maxHeader {
		return nil, fmt.Errorf("nats: message %s has %d bytes of headers, JetStream stores at most %d: %w", m.ID, hdr, maxHeader, messaging.ErrMessageTooLarge)
	}
	return &natsgo.Msg{Subject: subject, Header: h, Data: m.Payload}, nil
}

// decode fills m's publisher fields from a NATS message's header and data.
// Headers the adapter set become ID, Key and Time; other entries (first
// value of each) become Header. Without a time header Time is the ID's when
// the ID is a version 7 UUID, else zero.
func decode(h natsgo.Header, data []byte, m *messaging.Message) {
	m.Payload = data
	var user messaging.Header
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		switch k {
		case HeaderMsgID:
			m.ID = vs[0]
		case HeaderKey:
			m.Key = vs[0]
		case HeaderTime:
			if n, err := strconv.ParseInt(vs[0], 10, 64); err == nil {
				m.Time = time.Unix(0, n)
			}
		case HeaderEncoded:
			b, err := base64.StdEncoding.DecodeString(vs[0])
			if err != nil {
				break
			}
			if user == nil {
				user = make(messaging.Header, len(h))
			}
			var enc messaging.Message // entries win over the plain headers
			if len(b) > 0 && b[0] == '{' {
				var old legacyEncoded
				if json.Unmarshal(b, &old) != nil {
					break
				}
				enc.ID, enc.Key = old.ID, old.Key
				maps.Copy(user, old.Header)
			} else if !decodeEncoded(b, &enc, user) {
				break
			}
			if enc.ID != "" {
				defer func() { m.ID = enc.ID }()
			}
			if enc.Key != "" {
				defer func() { m.Key = enc.Key }()
			}
		default:
			if user == nil {
				user = make(messaging.Header, len(h))
			}
			user[k] = vs[0]
		}
	}
	if len(user) == 0 {
		user = nil
	}
	m.Header = user
	if m.Time.IsZero() {
		if at, ok := driver.IDTime(m.ID); ok {
			m.Time = at
		}
	}
}
