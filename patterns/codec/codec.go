// Package codec turns typed values into message payloads and back for the
// patterns. JSON is the default; any Codec can be plugged in.
package codec

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/msgkit/messaging"
)

// HeaderContentType is the message header in which Encode records the
// codec's content type.
const HeaderContentType = "content-type"

// Codec marshals values to payloads and back. Implementations must be safe
// for concurrent use.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value v points to.
	Unmarshal(data []byte, v any) error
	// ContentType names the encoding, for example "application/json".
	ContentType() string
}

// JSON is the default Codec: encoding/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) ContentType() string                { return "application/json" }

// Encode returns a message whose payload is v encoded with c (JSON when c is
// nil) and whose content-type header names the encoding.
func Encode(c Codec, v any) (*messaging.Message, error) {
	if c == nil {
		c = JSON
	}
	b, err := c.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: encode %T as %s: %w", v, c.ContentType(), err)
	}
	return &messaging.Message{Payload: b, Header: messaging.Header{HeaderContentType: c.ContentType()}}, nil
}

// Decode decodes m's payload with c (JSON when c is nil) into a T. Its errors
// are marked messaging.Permanent: a payload that does not decode never will.
func Decode[T any](c Codec, m *messaging.Message) (T, error) {
	if c == nil {
		c = JSON
	}
	var v T
	if err := c.Unmarshal(m.Payload, &v); err != nil {
		return v, messaging.Permanent(fmt.Errorf("codec: decode message %s on %s as %T (%s): %w", m.ID, m.Topic, v, c.ContentType(), err))
	}
	return v, nil
}

// Func is a typed handler: it gets the decoded value and the message it came
// in (for ID, Key, Attempt, headers). Its error has the meaning of a
// messaging.Handler's.
type Func[T any] func(ctx context.Context, v T, m *messaging.Message) error

// Handler adapts a typed handler to messaging.Handler: it decodes each
// message with c (JSON when c is nil) and calls h. A message that does not
// decode is rejected with a Permanent error and h is not called.
func Handler[T any](c Codec, h Func[T]) messaging.Handler {
	return func(ctx context.Context, m *messaging.Message) error {
		v, err := Decode[T](c, m)
		if err != nil {
			return err
		}
		return h(ctx, v, m)
	}
}
