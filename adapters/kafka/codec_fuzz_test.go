package kafka

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// FuzzCodec: any message Publish accepts comes back from its record byte
// for byte (Time to the millisecond, the record timestamp's resolution).
func FuzzCodec(f *testing.F) {
	f.Add("id-1", "", "name", "value", []byte("payload"), int64(1700000000123))
	f.Add("\xff", "k\r\n", "msgkit-idx", "\x00", []byte{0}, int64(0))
	f.Fuzz(func(t *testing.T, id, key, name, value string, payload []byte, ms int64) {
		m := &messaging.Message{ID: id, Key: key, Payload: payload, Header: messaging.Header{name: value}, Time: time.UnixMilli(ms % (1 << 40))}
		if id == "" || messaging.ValidateHeader(m.Header) != nil {
			return
		}
		r, err := toRecord("t", m)
		if err != nil {
			t.Fatalf("toRecord: %v", err)
		}
		got := fromRecord(&r, "g", 1)
		if len(got.Header) == 0 {
			got.Header = nil
		}
		if got.ID != m.ID || got.Key != m.Key || !got.Time.Equal(m.Time) || !bytes.Equal(got.Payload, m.Payload) || !maps.Equal(got.Header, m.Header) {
			t.Fatalf("got %+v\nwant %+v", got, m)
		}
	})
}
