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

// nativeRequest sends m with the client's native request/reply and decodes
// the reply, mapping errors to this package's.
func nativeRequest[Resp any](ctx context.Context, nr messaging.Requester, cfg config, topic string, m *messaging.Message) (Resp, error) {
	var zero Resp
	start := time.Now()
	reply, err := nr.Request(ctx, topic, m)
	if err != nil {
		var re *messaging.ReplyError
		switch {
		case errors.As(err, &re):
			return zero, &RemoteError{Topic: topic, Msg: re.Description}
		case errors.Is(err, context.DeadlineExceeded):
			return zero, fmt.Errorf("%w from %s after %v: %w", ErrTimeout, topic, time.Since(start).Round(time.Millisecond), err)
		}
		return zero, fmt.Errorf("reqreply: request to %s: %w", topic, err)
	}
	v, err := codec.Decode[Resp](cfg.codec, reply)
	if err != nil {
		return zero, fmt.Errorf("reqreply: reply from %s: %w", topic, err)
	}
	return v, nil
}

// nativeServe answers topic's native requests with h.
func nativeServe[Req, Resp any](ctx context.Context, nr messaging.Requester, cfg config, topic, group string, h HandlerFunc[Req, Resp]) (messaging.Subscription, error) {
	handle := func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		var out *messaging.Message
		inner := func(ctx context.Context, m *messaging.Message) error {
			req, err := codec.Decode[Req](cfg.codec, m)
			if err != nil {
				return err
			}
			resp, err := h(ctx, req)
			if err != nil {
				return err
			}
			out, err = codec.Encode(cfg.codec, resp)
			return err
		}
		// The middleware sees the request like any delivered message.
		if err := messaging.Chain(inner, cfg.mws...)(ctx, m); err != nil {
			return nil, err
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
