package nats

import (
	"bytes"
	"maps"
	"net/textproto"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// wire writes h as nats.go puts headers on the wire (Msg.headerBytes:
// values trimmed, CR and LF replaced by spaces) and parses it back as a
// subscriber's nats.go does.
func wire(t testing.TB, h natsgo.Header) natsgo.Header {
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	nl := strings.NewReplacer("\r", " ", "\n", " ")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + nl.Replace(textproto.TrimString(v)) + "\r\n")
		}
	}
	b.WriteString("\r\n")
	out, err := natsgo.DecodeHeadersMsg(b.Bytes())
	if err != nil {
		t.Fatalf("nats.go cannot parse the header block: %v\n%q", err, b.Bytes())
	}
	return out
}

// roundTrip encodes m, passes its header through the wire format and
// decodes it, failing unless ID, key, time, payload and header are intact.
func roundTrip(t testing.TB, m *messaging.Message) {
	nm, err := encode("subj", m, 0, 0)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var got messaging.Message
	decode(wire(t, nm.Header), nm.Data, &got)
	if got.ID != m.ID || got.Key != m.Key || !got.Time.Equal(m.Time) || !bytes.Equal(got.Payload, m.Payload) {
		t.Fatalf("got ID %q key %q time %v payload %q, want %q %q %v %q", got.ID, got.Key, got.Time, got.Payload, m.ID, m.Key, m.Time, m.Payload)
	}
	if len(got.Header) != len(m.Header) || !maps.Equal(got.Header, m.Header) {
		t.Fatalf("header %q, want %q", got.Header, m.Header)
	}
}

func TestCodecRoundTripsHostileHeaders(t *testing.T) {
	for _, h := range []messaging.Header{
		{"bad-utf8": "\xff\xfe"},
		{"\xff\xfe": "name not UTF-8"},
		{"crlf": "a\r\nb"},
		{"Cr\r\nLf": "v"},
		{"nul\x00": "\x00"},
		{"colon:name": " leading and trailing "},
		{"Nats-Msg-Id": "user's own", "Messaging-Key": "k", "Messaging-Encoded": "e", "nats-expected-stream": "x"},
		{"a": "1", "A": "2"},
		{"Status": "100", "Description": "Idle Heartbeat"},
		{"tab": "\tx\t", "unicode": "héllo ✓", "del": "\x7f"},
	} {
		roundTrip(t, &messaging.Message{ID: "id", Payload: []byte("p"), Header: h, Time: time.Unix(0, 42)})
	}
	for _, s := range []string{"\xff", "a\r\nb", " x", "\x00"} {
		roundTrip(t, &messaging.Message{ID: s, Key: s, Time: time.Unix(1, 0)})
	}
}

// TestCodecTimeApartFromIDTime: a caller's Time travels as it was set also
// when the ID is a version 7 UUID carrying another time (an ID made earlier,
// a message republished with its event time): Messaging-Time is left out
// only when it equals the ID's time, and the consumer takes the ID's time
// only when no Messaging-Time came.
func TestCodecTimeApartFromIDTime(t *testing.T) {
	id := driver.NewID()
	at, ok := driver.IDTime(id)
	if !ok {
		t.Fatalf("driver.NewID() = %q carries no time", id)
	}
	for _, tm := range []time.Time{time.Unix(1_700_000_000, 123), at.Add(time.Hour), at} {
		roundTrip(t, &messaging.Message{ID: id, Payload: []byte("p"), Time: tm})
	}
}

// TestCodecEncodesStatusHeaders: user headers named Status and Description
// do not travel as such, where a message without payload would read as a
// server status (nats.go reads these names as they are spelled here).
func TestCodecEncodesStatusHeaders(t *testing.T) {
	m := &messaging.Message{Header: messaging.Header{"Status": "503", "Description": "No Responders", "status": "x"}}
	nm, err := encode("subj", m, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if nm.Header.Get("Status") != "" || nm.Header.Get("Description") != "" {
		t.Fatalf("user headers Status and Description sent as such: %q", nm.Header)
	}
	roundTrip(t, m)
}

// TestCodecReadsLegacyJSON: messages written by earlier versions (JSON in
// HeaderEncoded) still decode.
func TestCodecReadsLegacyJSON(t *testing.T) {
	h := natsgo.Header{HeaderMsgID: {`"a\nb"`}, HeaderEncoded: {"eyJpIjoiYVxuYiIsImgiOnsieDp5IjoieiJ9fQ=="}}
	var m messaging.Message
	decode(h, nil, &m)
	if m.ID != "a\nb" || m.Header["x:y"] != "z" {
		t.Fatalf("legacy encoding decoded as ID %q header %q", m.ID, m.Header)
	}
}

// FuzzCodec: any ID, key, payload and header that ValidateHeader accepts
// round-trips through the NATS header format byte for byte.
func FuzzCodec(f *testing.F) {
	f.Add("id-1", "", "name", "value", []byte("payload"))
	f.Add("\xff", "k\r\n", "Nats-Msg-Id", " v ", []byte{0})
	f.Add("", "\x00", "a:b", "\xc3", []byte(nil))
	f.Fuzz(func(t *testing.T, id, key, name, value string, payload []byte) {
		m := &messaging.Message{ID: id, Key: key, Payload: payload, Header: messaging.Header{name: value}}
		if messaging.ValidateHeader(m.Header) != nil {
			return
		}
		if len(payload) == 0 {
			m.Payload = nil
		}
		roundTrip(t, m)
	})
}
