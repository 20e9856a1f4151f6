package messaging

import (
	"context"
	"errors"
	"fmt"
)

// Requester is native request/reply, for adapters whose broker has it (NATS:
// a request carries a reply inbox and the first answer wins). It is optional:
// check with a type assertion; patterns/reqreply falls back to request/reply
// over topics without it. Requests are not stored and not retried.
type Requester interface {
	// Request sends msg to topic and waits for the first reply or for ctx.
	// It sets msg's ID and Time as Publish does. Errors wrap ErrNoResponders
	// when nobody serves the topic, are a *ReplyError when the server's
	// handler failed, or the context's error.
	Request(ctx context.Context, topic string, msg *Message) (*Message, error)
	// Serve answers topic's requests with h until ctx is done or the
	// subscription is closed. Servers in the same Group share the requests.
	Serve(ctx context.Context, topic string, h ReplyHandler, opts ...SubscribeOption) (Subscription, error)
}

// ReplyHandler answers one request. The returned message (nil: an empty
// reply) goes back to the requester; a returned error, or a panic, is sent
// instead as a service error, which Request returns as a *ReplyError.
type ReplyHandler func(ctx context.Context, req *Message) (*Message, error)

// ReplyError is the error Request returns when the server's handler failed.
type ReplyError struct {
	Topic       string // the request topic
	Description string // the handler's error text
	Code        string // a status code, e.g. "500"
}

// Error describes the failure with the topic, code and description.
func (e *ReplyError) Error() string {
	return fmt.Sprintf("messaging: request %s: service error %s: %s", e.Topic, e.Code, e.Description)
}

// ErrNoResponders is wrapped by Requester.Request when nobody serves the
// topic.
var ErrNoResponders = errors.New("messaging: no responders")
