package codec_test

import (
	"context"
	"errors"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/codec"
)

type v struct {
	A string `json:"a"`
	B int    `json:"b"`
}

func TestRoundTripAndContentType(t *testing.T) {
	m, err := codec.Encode(nil, v{A: "x", B: 2})
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload) != `{"a":"x","b":2}` || m.Header[codec.HeaderContentType] != "application/json" {
		t.Fatalf("encoded %s %v", m.Payload, m.Header)
	}
	got, err := codec.Decode[v](codec.JSON, m)
	if err != nil || got != (v{A: "x", B: 2}) {
		t.Fatalf("decoded %+v %v", got, err)
	}
}

func TestDecodeFailureIsPermanentAndSkipsHandler(t *testing.T) {
	called := false
	h := codec.Handler(nil, func(context.Context, v, *messaging.Message) error { called = true; return nil })
	err := h(context.Background(), &messaging.Message{ID: "m1", Payload: []byte("nope")})
	if !messaging.IsPermanent(err) || called {
		t.Fatalf("err %v (permanent %v), handler called %v", err, messaging.IsPermanent(err), called)
	}
	if _, err := codec.Encode(nil, make(chan int)); err == nil {
		t.Error("encoding a channel succeeded")
	}
}

// upper is a Codec that is not JSON, to show any Codec plugs in.
type upper struct{}

func (upper) Marshal(x any) ([]byte, error) {
	s, ok := x.(string)
	if !ok {
		return nil, errors.New("strings only")
	}
	return []byte(s), nil
}
func (upper) Unmarshal(b []byte, x any) error { *(x.(*string)) = string(b); return nil }
func (upper) ContentType() string             { return "text/plain" }

func TestPluggableCodec(t *testing.T) {
	m, err := codec.Encode(upper{}, "hello")
	if err != nil || string(m.Payload) != "hello" || m.Header[codec.HeaderContentType] != "text/plain" {
		t.Fatalf("%v %v", m, err)
	}
	got := ""
	h := codec.Handler(upper{}, func(_ context.Context, s string, _ *messaging.Message) error { got = s; return nil })
	if err := h(context.Background(), m); err != nil || got != "hello" {
		t.Fatalf("%q %v", got, err)
	}
}
