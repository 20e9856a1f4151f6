package nats

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
)

// NATS headers the adapter sets. Consumers do not see them in
// Message.Header: they become ID, Key and Time.
const (
	// HeaderMsgID is the JetStream deduplication header; it carries Message.ID.
	HeaderMsgID = natsgo.MsgIdHdr // "Nats-Msg-Id"
	// HeaderKey carries Message.Key when it is not empty.
	HeaderKey = "Messaging-Key"
	// HeaderTime carries Message.Time as Unix nanoseconds in decimal.
	HeaderTime = "Messaging-Time"
	// HeaderEncoded carries, base64 of JSON, the ID, key and header entries
	// that NATS headers cannot carry verbatim (names with ':' or white space,
	// names starting with "Nats-" or "Messaging-", values with CR, LF or
	// leading or trailing white space), so every header reaches the consumer
	// exactly as published.
	HeaderEncoded = "Messaging-Encoded"

	// Headers of a reply whose server failed, as the NATS micro framework
	// writes them.
	headerServiceError     = "Nats-Service-Error"
	headerServiceErrorCode = "Nats-Service-Error-Code"
)

// hdrOverhead is the header block's fixed wire size ("NATS/1.0\r\n" and the
// final "\r\n"); each entry adds len(name)+len(value)+4 (": " and "\r\n").
const hdrOverhead = 12

// sizeSlack is what MaxMessageSize keeps below the server's max_payload for
// the adapter's own headers and the separators of user headers, which
// Message.Size does not count. A message whose encoding still exceeds
// max_payload (hundreds of tiny headers) fails with ErrMessageTooLarge too.
const sizeSlack = 512

type encoded struct {
	ID     string            `json:"i,omitempty"`
	Key    string            `json:"k,omitempty"`
	Header map[string]string `json:"h,omitempty"`
}

func safeName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == ':' || c == 0x7f {
			return false
		}
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
	return !strings.ContainsAny(v, "\r\n")
}

// encode turns m into a NATS message for subject and checks its wire size
// against maxPayload (when > 0).
func encode(subject string, m *messaging.Message, maxPayload int64) (*natsgo.Msg, error) {
	h := make(natsgo.Header, len(m.Header)+3)
	var enc encoded
	size := int64(len(m.Payload) + hdrOverhead)
	set := func(k, v string) {
		h[k] = []string{v}
		size += int64(len(k) + len(v) + 4)
	}
	if safeValue(m.ID) {
		set(HeaderMsgID, m.ID)
	} else {
		enc.ID = m.ID
		set(HeaderMsgID, strconv.Quote(m.ID)) // still unique, for deduplication
	}
	if m.Key != "" {
		if safeValue(m.Key) {
			set(HeaderKey, m.Key)
		} else {
			enc.Key = m.Key
		}
	}
	if !m.Time.IsZero() {
		set(HeaderTime, strconv.FormatInt(m.Time.UnixNano(), 10))
	}
	for k, v := range m.Header {
		if safeName(k) && safeValue(v) {
			set(k, v)
			continue
		}
		if enc.Header == nil {
			enc.Header = map[string]string{}
		}
		enc.Header[k] = v
	}
	if enc.ID != "" || enc.Key != "" || enc.Header != nil {
		b, err := json.Marshal(enc)
		if err != nil {
			return nil, fmt.Errorf("encode headers: %w", err)
		}
		set(HeaderEncoded, base64.StdEncoding.EncodeToString(b))
	}
	if maxPayload > 0 && size > maxPayload {
		return nil, fmt.Errorf("message %s is %d bytes with its headers, server max_payload %d: %w", m.ID, size, maxPayload, messaging.ErrMessageTooLarge)
	}
	return &natsgo.Msg{Subject: subject, Header: h, Data: m.Payload}, nil
}

// decode fills m's publisher fields from a NATS message's header and data.
// Headers the adapter set become ID, Key and Time; other entries (first
// value of each) become Header. Time stays zero when the message has none.
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
			var enc encoded
			if b, err := base64.StdEncoding.DecodeString(vs[0]); err == nil && json.Unmarshal(b, &enc) == nil {
				if enc.ID != "" {
					defer func() { m.ID = enc.ID }()
				}
				if enc.Key != "" {
					m.Key = enc.Key
				}
				for k, v := range enc.Header {
					if user == nil {
						user = messaging.Header{}
					}
					user[k] = v
				}
			}
		default:
			if user == nil {
				user = make(messaging.Header, len(h))
			}
			user[k] = vs[0]
		}
	}
	m.Header = user
}
