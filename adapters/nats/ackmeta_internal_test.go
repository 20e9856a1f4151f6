package nats

import (
	"testing"
	"time"
)

func TestParseAckSubject(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	for _, tc := range []struct {
		reply string
		ok    bool
		want  ackMeta
	}{
		{"$JS.ACK.S.C.3.42.7.1767323045000000006.0", true, ackMeta{stream: "S", delivered: 3, offset: "42", time: time.Unix(0, ts)}},
		{"$JS.ACK._.hash.S.C.1.9.1.1767323045000000006.5.tok", true, ackMeta{stream: "S", delivered: 1, offset: "9", time: time.Unix(0, ts)}},
		{"$JS.ACK.dom.hash.S.C.2.10.1.1767323045000000006.5", true, ackMeta{stream: "S", delivered: 2, offset: "10", time: time.Unix(0, ts)}},
		{"$JS.ACK.S.C.3.042.7.1767323045000000006.0", false, ackMeta{}}, // not canonical: Metadata decides
		{"$JS.ACK.S.C.3.42.7.1767323045000000006", false, ackMeta{}},
		{"$JS.ACK.a.b.S.C.3.42.7.1767323045000000006", false, ackMeta{}},
		{"_INBOX.x", false, ackMeta{}},
		{"", false, ackMeta{}},
	} {
		got, ok := parseAckSubject(tc.reply)
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.reply, ok, tc.ok)
			continue
		}
		if ok && (got.stream != tc.want.stream || got.delivered != tc.want.delivered || got.offset != tc.want.offset || !got.time.Equal(tc.want.time)) {
			t.Errorf("%q: got %+v, want %+v", tc.reply, got, tc.want)
		}
	}
}
