package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

func TestExclusiveStart(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	cases := []struct {
		pos  messaging.Position
		want string
	}{
		{messaging.Earliest, "0-0"},
		{messaging.Latest, "$"},
		{messaging.AtOffset("1700000000000-5"), "1700000000000-4"},
		{messaging.AtOffset("1700000000000-0"), "1699999999999-18446744073709551615"},
		{messaging.AtOffset("1700000000000"), "1699999999999-18446744073709551615"},
		{messaging.AtOffset("0-0"), "0-0"},
		{messaging.AfterOffset("1700000000000-5"), "1700000000000-5"},
		{messaging.AfterOffset("1700000000000"), "1700000000000-0"},
		{messaging.AtTime(ts), "1700000000122-18446744073709551615"},
	}
	for _, c := range cases {
		got, err := exclusiveStart(c.pos)
		if err != nil || got != c.want {
			t.Errorf("exclusiveStart(%v) = %q, %v; want %q", c.pos, got, err, c.want)
		}
	}
	for _, bad := range []messaging.Position{messaging.AtOffset("abc"), messaging.AfterOffset("1-x"), messaging.AtOffset(""), messaging.AtOffset("-1-0")} {
		if _, err := exclusiveStart(bad); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("exclusiveStart(%v): %v, want ErrInvalidOption", bad, err)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	in := &messaging.Message{ID: "id-1", Key: "k", Payload: []byte{0, 1, 2, 255}, Header: messaging.Header{"a": "1", "empty": "", "id": "not the ID"}, Time: time.Unix(1700000000, 123456789)}
	kv := encode(in)
	// As the server returns the fields: strings.
	list := make([]any, len(kv))
	for i, v := range kv {
		switch v := v.(type) {
		case []byte:
			list[i] = string(v)
		default:
			list[i] = v
		}
	}
	out := decodeList("topic", "1700000000000-1", list)
	if out.ID != in.ID || out.Key != in.Key || string(out.Payload) != string(in.Payload) || !out.Time.Equal(in.Time) {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	if len(out.Header) != 3 || out.Header["a"] != "1" || out.Header["id"] != "not the ID" || out.Header["empty"] != "" {
		t.Fatalf("header %v, want %v", out.Header, in.Header)
	}
	if out.Topic != "topic" || out.Offset != "1700000000000-1" {
		t.Fatalf("topic %q offset %q", out.Topic, out.Offset)
	}
	// An entry another producer wrote: fields become headers, the entry ID
	// is the message ID and its time the publish time.
	foreign := decodeMap("topic", "1700000000000-7", map[string]any{"order": "42"})
	if foreign.ID != "1700000000000-7" || foreign.Header["order"] != "42" || !foreign.Time.Equal(time.UnixMilli(1700000000000)) || len(foreign.Payload) != 0 {
		t.Fatalf("foreign entry decoded as %+v", foreign)
	}
}
