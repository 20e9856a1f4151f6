package redis

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// FuzzCodec: any message Publish accepts comes back from its stream entry
// byte for byte (go-redis returns field values as strings).
func FuzzCodec(f *testing.F) {
	f.Add("id-1", "", "name", "value", []byte("payload"), int64(1))
	f.Add("\xff", "k\r\n", "payload", "h:x", []byte{0}, int64(0))
	f.Add("", "\x00", "id", "", []byte(nil), int64(-5))
	f.Fuzz(func(t *testing.T, id, key, name, value string, payload []byte, ns int64) {
		m := &messaging.Message{ID: id, Key: key, Payload: payload, Header: messaging.Header{name: value}, Time: time.Unix(0, ns)}
		if id == "" || messaging.ValidateHeader(m.Header) != nil {
			return // Publish sets empty IDs and refuses such headers
		}
		kv := encode(m)
		for i, v := range kv {
			if b, ok := v.([]byte); ok {
				kv[i] = string(b)
			}
		}
		got := decodeList("t", "1-0", kv)
		if got.ID != m.ID || got.Key != m.Key || !got.Time.Equal(m.Time) || !bytes.Equal(got.Payload, m.Payload) || !maps.Equal(got.Header, m.Header) {
			t.Fatalf("got %+v\nwant %+v", got, m)
		}
	})
}
