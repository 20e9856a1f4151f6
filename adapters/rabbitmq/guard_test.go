package rabbitmq

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// TestRewriteKeepsStreamOffset: a rewritten header table keeps the
// broker's x-stream-offset when the entries before it can be skipped (a
// table too large for amqp091-go is walked in full), and is only
// {x-msgkit-undecodable} when they cannot.
func TestRewriteKeepsStreamOffset(t *testing.T) {
	entry := func(k string, typ byte, v []byte) []byte {
		return append(append(append([]byte{byte(len(k))}, k...), typ), v...)
	}
	str := func(k, v string) []byte {
		return entry(k, 'S', append(binary.BigEndian.AppendUint32(nil, uint32(len(v))), v...))
	}
	offset := entry(hdrStreamOffset, 'l', binary.BigEndian.AppendUint64(nil, 42))
	var many []byte
	for i := range decodeMaxEntries + 1 {
		many = append(many, str(fmt.Sprintf("h%d", i), "v")...)
	}
	unknown := entry("bad", 'Z', []byte{1, 2, 3})
	for _, c := range []struct {
		name  string
		table []byte
		kept  bool
	}{
		{"too many entries, offset last", append(append([]byte{}, many...), offset...), true},
		{"offset before an unknown type", append(append([]byte{}, offset...), unknown...), true},
		{"offset after an unknown type", append(append([]byte{}, unknown...), offset...), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// class 60, weight 0, body size 0, flags: headers only
			payload := []byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0}
			payload = binary.BigEndian.AppendUint32(payload, uint32(len(c.table)))
			payload = append(payload, c.table...)
			frame := append([]byte{2, 0, 1}, binary.BigEndian.AppendUint32(nil, uint32(len(payload)))...)
			frame = append(append(frame, payload...), 0xCE)

			out := rewriteHeaderFrame(frame)
			if got := int(binary.BigEndian.Uint32(out[3:7])); got != len(out)-8 || out[len(out)-1] != 0xCE {
				t.Fatalf("frame size %d for %d bytes", got, len(out))
			}
			n := binary.BigEndian.Uint32(out[7+14:])
			table := out[7+14+4 : 7+14+4+n]
			if err := checkTable(table, 0); err != nil {
				t.Fatalf("rewritten table: %v", err)
			}
			if _, ok := findEntry(table, hdrUndecodable); !ok {
				t.Fatalf("no %s in the rewritten table", hdrUndecodable)
			}
			e, ok := findIntEntry(table, hdrStreamOffset)
			if ok != c.kept {
				t.Fatalf("offset kept: %v, want %v", ok, c.kept)
			}
			if ok && string(e) != string(offset) {
				t.Fatalf("offset entry %x, want %x", e, offset)
			}
		})
	}
}

// findEntry reports whether the encoded table b has a top-level entry key.
func findEntry(b []byte, key string) ([]byte, bool) {
	for len(b) > 0 {
		k := int(b[0])
		name := string(b[1 : 1+k])
		rest, err := skipField(b[1+k:])
		if err != nil {
			return nil, false
		}
		if name == key {
			return b[:len(b)-len(rest)], true
		}
		b = rest
	}
	return nil, false
}
