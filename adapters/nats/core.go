package nats

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/dispatch"
	"github.com/msgkit/messaging/internal/prepare"
)

// subscribeCore subscribes to the plain subject topic (a queue group when o
// names a Group). Core NATS cannot redeliver: a failed handler's message is
// logged and dropped.
func (c *Client) subscribeCore(ctx context.Context, topic string, h messaging.Handler, o messaging.SubscribeOptions) (messaging.Subscription, error) {
	log := c.cfg.logger
	settle := func(d dispatch.Delivery, r dispatch.Result) {
		if r.Outcome == dispatch.Nack || r.Outcome == dispatch.Term {
			log.Warn("nats core: handler failed; core NATS cannot redeliver, message dropped", "topic", topic, "group", o.Group, "id", d.Msg.ID, "error", r.Err)
		}
	}
	return c.coreSubscription(ctx, topic, o, h, settle, func(m *natsgo.Msg) *messaging.Message {
		msg := &messaging.Message{Topic: topic, Group: o.Group, Attempt: 1}
		decode(m.Header, m.Data, msg)
		if msg.Time.IsZero() {
			msg.Time = time.Now()
		}
		return msg
	})
}

// coreSubscription runs a core NATS subscription whose messages go through a
// dispatch pool. It returns once the server has registered the interest.
func (c *Client) coreSubscription(ctx context.Context, topic string, o messaging.SubscribeOptions, h messaging.Handler, settle dispatch.SettleFunc, conv func(*natsgo.Msg) *messaging.Message) (messaging.Subscription, error) {
	var sub *dispatch.Subscription
	sub = dispatch.NewSubscription(ctx, func() { c.subs.Remove(sub) })
	if err := c.subs.Add(sub); err != nil {
		return nil, err
	}
	pool := dispatch.NewPool(sub.HandlerContext(), o.Concurrency, max(o.Prefetch-o.Concurrency, 0), h, settle, 0)
	fetchCtx := sub.FetchContext()
	cb := func(m *natsgo.Msg) {
		d := dispatch.Delivery{Msg: conv(m), Token: m}
		if !pool.Submit(fetchCtx, d) {
			settle(d, dispatch.Result{Outcome: dispatch.Release})
		}
	}
	var (
		ns  *natsgo.Subscription
		err error
	)
	if o.Group != "" {
		ns, err = c.nc.QueueSubscribe(topic, o.Group, cb)
	} else {
		ns, err = c.nc.Subscribe(topic, cb)
	}
	if err == nil {
		err = c.flush(ctx)
	}
	if err != nil {
		if ns != nil {
			_ = ns.Unsubscribe()
		}
		pool.Close()
		sub.Finish(nil)
		return nil, fmt.Errorf("subscribe to %s: %w", topic, c.wrapConnErr(err))
	}
	closed := make(chan struct{})
	var once sync.Once
	ns.SetClosedHandler(func(string) { once.Do(func() { close(closed) }) })
	go func() {
		var err error
		select {
		case <-fetchCtx.Done():
		case <-closed:
			if c.nc.IsClosed() {
				err = fmt.Errorf("subscription to %s: %w", topic, fmt.Errorf("%w: %w", messaging.ErrClosed, natsgo.ErrConnectionClosed))
			}
		}
		_ = ns.Unsubscribe()
		pool.Close()
		sub.Finish(err)
	}()
	return sub, nil
}

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
// deadline). It sets msg's ID and Time like Publish; the reply's delivery
// fields are Topic = topic and Attempt = 1. Errors: ErrNoResponders (nobody
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
		return nil, fmt.Errorf("request: %w", messaging.ErrClosed)
	}
	if msg == nil {
		msg = &messaging.Message{}
	}
	maxPayload := c.maxPayload()
	if err := prepare.Publish(topic, []*messaging.Message{msg}, int(maxPayload)-sizeSlack); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	nm, err := encode(topic, msg, maxPayload, 0)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", topic, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.requestTimeout)
		defer cancel()
	}
	rm, err := c.nc.RequestMsgWithContext(ctx, nm)
	if err != nil {
		if errors.Is(err, natsgo.ErrNoResponders) {
			return nil, fmt.Errorf("request %s: %w: %w", topic, messaging.ErrNoResponders, err)
		}
		return nil, fmt.Errorf("request %s: %w", topic, c.wrapConnErr(err))
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
	if c.closed.Load() {
		return nil, fmt.Errorf("serve: %w", messaging.ErrClosed)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("serve: topic: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("serve: nil handler: %w", messaging.ErrInvalidOption)
	}
	o, err := messaging.NewSubscribeOptions(c.cfg.prefetch, opts...)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	var replyTo sync.Map // *messaging.Message -> reply subject
	handler := func(ctx context.Context, req *messaging.Message) error {
		subj, _ := replyTo.LoadAndDelete(req)
		resp, err := callReply(ctx, h, req)
		if subj == nil || subj.(string) == "" {
			return nil
		}
		if resp == nil {
			resp = &messaging.Message{}
		}
		if err := prepare.Publish(topic, []*messaging.Message{resp}, 0); err != nil {
			return err
		}
		nm, encErr := encode(subj.(string), resp, c.maxPayload(), 0)
		if encErr != nil {
			err = fmt.Errorf("encode reply: %w", encErr)
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
	settle := func(dispatch.Delivery, dispatch.Result) {}
	return c.coreSubscription(ctx, topic, o, handler, settle, func(m *natsgo.Msg) *messaging.Message {
		req := &messaging.Message{Topic: topic, Group: o.Group, Attempt: 1}
		decode(m.Header, m.Data, req)
		if req.Time.IsZero() {
			req.Time = time.Now()
		}
		replyTo.Store(req, m.Reply)
		return req
	})
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
