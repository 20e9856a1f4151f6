package codec_test

import (
	"context"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/codec"
)

type Order struct {
	ID    string `json:"id"`
	Cents int    `json:"cents"`
}

// Encode a value into a message and decode it back; Handler decodes for a
// typed handler (a message that does not decode is a permanent failure).
func Example() {
	m, err := codec.Encode(codec.JSON, Order{ID: "o-1", Cents: 1999})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(m.Payload), m.Header[codec.HeaderContentType])

	h := codec.Handler(codec.JSON, func(_ context.Context, o Order, _ *messaging.Message) error {
		fmt.Println("order", o.ID, o.Cents)
		return nil
	})
	if err := h(context.Background(), m); err != nil {
		panic(err)
	}
	err = h(context.Background(), &messaging.Message{Payload: []byte("not json")})
	fmt.Println("bad payload is permanent:", messaging.IsPermanent(err))
	// Output:
	// {"id":"o-1","cents":1999} application/json
	// order o-1 1999
	// bad payload is permanent: true
}
