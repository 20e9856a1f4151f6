package nats

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
)

// Requester is native request/reply (messaging.Requester), implemented by
// *Client in both modes.
type Requester = messaging.Requester

// ReplyHandler answers one request; see messaging.ReplyHandler.
type ReplyHandler = messaging.ReplyHandler

// ReplyError is the error Request returns when the server's handler failed:
// the reply carried the NATS micro framework's Nats-Service-Error header.
type ReplyError = messaging.ReplyError

// ErrNoResponders is returned (wrapped, together with
// messaging.ErrNoResponders) by Request when no one serves the topic. It is
// nats.go's ErrNoResponders.
var ErrNoResponders = natsgo.ErrNoResponders

// Request sends msg on the plain NATS subject topic with a reply inbox and
// waits for the first reply, or for ctx (WithRequestTimeout when ctx has no
// deadline). It sets msg's ID and Time like JetStream-mode Publish, also in
// core mode (one message per round trip; its ID names it in both sides'
// logs); the reply's delivery fields are Topic = topic and Attempt = 1. Errors: ErrNoResponders (nobody
// subscribed, reported at once by the server), context.DeadlineExceeded or
// natsgo.ErrTimeout, *ReplyError when the handler failed, ErrClosed.
//
// Request is core NATS in both modes: it is never stored, never retried. In
// JetStream mode do not use a topic whose subject a stream captures: the
// stream would store the request and answer with its acknowledgement.
func (c *Client) Request(ctx context.Context, topic string, msg *messaging.Message) (*messaging.Message, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return nil, fmt.Errorf("nats: request: %w", messaging.ErrClosed)
	}
	if msg == nil {
		msg = &messaging.Message{}
	}
	maxPayload := c.maxPayload()
	if err := driver.PreparePublish(topic, []*messaging.Message{msg}, int(maxPayload)-sizeSlack); err != nil {
		return nil, fmt.Errorf("nats: request: %w", err)
	}
	nm, err := encode(topic, msg, maxPayload, 0)
	if err != nil {
		return nil, fmt.Errorf("nats: request %s: %w", topic, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.requestTimeout)
		defer cancel()
	}
	rm, err := c.nc.RequestMsgWithContext(ctx, nm)
	if err != nil {
		if errors.Is(err, natsgo.ErrNoResponders) {
			return nil, fmt.Errorf("nats: request %s: %w: %w", topic, messaging.ErrNoResponders, err)
		}
		return nil, fmt.Errorf("nats: request %s: %w", topic, c.wrapConnErr(err))
	}
	reply := &messaging.Message{Topic: topic, Attempt: 1}
	desc, code := rm.Header.Get(headerServiceError), rm.Header.Get(headerServiceErrorCode)
	delete(rm.Header, headerServiceError)
	delete(rm.Header, headerServiceErrorCode)
	decode(rm.Header, rm.Data, reply)
	if reply.Time.IsZero() {
		reply.Time = time.Now()
	}
	if desc != "" || code != "" {
		return reply, &ReplyError{Topic: topic, Description: desc, Code: code}
	}
	return reply, nil
}

// Serve answers the requests sent to the plain NATS subject topic (by
// Request, or by any NATS requester) with h until ctx is done or the
// subscription is closed. With the Group option the servers of one group
// share the requests (a NATS queue group); without it every server gets
// every request and the requester takes the first reply. Concurrency sets
// how many requests are handled at once. A request without a reply subject
// is handled and its result dropped. Nothing is redelivered: a request lost
// with a crashing server makes its requester time out.
func (c *Client) Serve(ctx context.Context, topic string, h ReplyHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("nats: serve: nil handler: %w", messaging.ErrInvalidOption)
	}
	handler := func(ctx context.Context, req *messaging.Message) error {
		subj, _ := c.replyTo.LoadAndDelete(req) // recorded by the receiver
		resp, err := callReply(ctx, h, req)
		if subj == nil || subj.(string) == "" {
			return nil
		}
		if resp == nil {
			resp = &messaging.Message{}
		}
		if err := driver.PreparePublish(topic, []*messaging.Message{resp}, 0); err != nil {
			return err
		}
		nm, encErr := encode(subj.(string), resp, c.maxPayload(), 0)
		if encErr != nil {
			err = fmt.Errorf("nats: encode reply: %w", encErr)
			nm = &natsgo.Msg{Subject: subj.(string), Header: natsgo.Header{}}
		}
		if err != nil {
			desc, _, _ := strings.Cut(err.Error(), "\n") // no stack traces to the caller
			nm.Header.Set(headerServiceError, desc)
			nm.Header.Set(headerServiceErrorCode, "500")
		}
		if perr := c.nc.PublishMsg(nm); perr != nil {
			c.cfg.logger.Warn("nats: sending a reply failed", "topic", topic, "id", req.ID, "error", perr)
		}
		return nil
	}
	sub, err := c.serving.Subscribe(ctx, topic, handler, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: serve: %w", err)
	}
	return sub, nil
}

// callReply runs h, turning a panic into an error.
func callReply(ctx context.Context, h ReplyHandler, req *messaging.Message) (resp *messaging.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, fmt.Errorf("%w: %v\n%s", messaging.ErrHandlerPanic, r, debug.Stack())
		}
	}()
	return h(ctx, req)
}
