package scenario

import (
	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/codec"
)

func encodeJSON(v any) (*messaging.Message, error) { return codec.Encode(codec.JSON, v) }
