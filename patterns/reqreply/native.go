package reqreply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/codec"
)

// WithoutNative makes Requester and Serve use request/reply over topics even
// on a client with native request/reply (NATS). Both sides of a topic must
// agree: a native requester is only answered by a native server.
func WithoutNative() Option { return func(cfg *config) error { cfg.noNative = true; return nil } }

// native returns the client's native request/reply, if it has one and it is
// not disabled.
func native(c messaging.Client, cfg config) (messaging.Requester, bool) {
	if cfg.noNative {
		return nil, false
	}
	r, ok := c.(messaging.Requester)
	return r, ok
}

// errExpired is a native server's answer to a request whose caller's
// deadline has passed, which it drops without calling h: native request/reply
// answers every request. The caller has normally given up already; if its
// clock is behind the server's, nativeRequest reports ErrTimeout, as the
// request would time out over topics.
var errExpired = errors.New("reqreply: the caller's deadline passed before the request was handled")

// nativeRequest sends m (with its HeaderDeadline) with the client's native
// request/reply and decodes the reply, mapping errors to this package's;
// start is when Request began.
func nativeRequest[Resp any](ctx context.Context, nr messaging.Requester, cfg config, topic string, m *messaging.Message, start time.Time) (Resp, error) {
	var zero Resp
	reply, err := nr.Request(ctx, topic, m)
	if err != nil {
		var re *messaging.ReplyError
		switch {
		case errors.As(err, &re) && re.Description == errExpired.Error():
			return zero, fmt.Errorf("%w from %s after %v: the server found the deadline passed (clocks out of sync?)", ErrTimeout, topic, since(start))
		case errors.As(err, &re):
			return zero, &RemoteError{Topic: topic, Msg: re.Description}
		case errors.Is(err, context.DeadlineExceeded):
			return zero, fmt.Errorf("%w from %s after %v: %w", ErrTimeout, topic, since(start), err)
		}
		return zero, fmt.Errorf("reqreply: request to %s: %w", topic, err)
	}
	v, err := codec.Decode[Resp](cfg.codec, reply)
	if err != nil {
		return zero, fmt.Errorf("reqreply: reply from %s: %w", topic, err)
	}
	return v, nil
}

// nativeServe answers topic's native requests with h; one whose
// HeaderDeadline has passed is answered with errExpired without calling h.
func nativeServe[Req, Resp any](ctx context.Context, nr messaging.Requester, cfg config, topic, group string, h HandlerFunc[Req, Resp]) (messaging.Subscription, error) {
	handle := func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		var out *messaging.Message
		var failed error // h's or the codec's, answered to the caller
		gone := false
		inner := func(ctx context.Context, m *messaging.Message) error {
			if expired(m) {
				gone = true
				return nil // as over topics: the middleware sees a success
			}
			req, err := codec.Decode[Req](cfg.codec, m)
			if err == nil {
				var resp Resp
				if resp, err = call(ctx, cfg, topic, h, req, m); err == nil {
					out, err = codec.Encode(cfg.codec, resp)
				}
			}
			// As over topics, an error of h is the answer, not a failure
			// of the delivery: the middleware sees the request handled
			// (a retry layer does not run h again).
			failed = err
			return nil
		}
		// The middleware sees the request like any delivered message.
		if err := messaging.Chain(inner, cfg.mws...)(ctx, m); err != nil {
			return nil, err
		}
		switch {
		case gone:
			return nil, errExpired
		case failed != nil:
			return nil, failed
		}
		return out, nil
	}
	opts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...), messaging.Group(group))
	sub, err := nr.Serve(ctx, topic, handle, opts...)
	if err != nil {
		return nil, fmt.Errorf("reqreply: serve %s: %w", topic, err)
	}
	return sub, nil
}
