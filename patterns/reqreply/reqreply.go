// Package reqreply is request/reply (synchronous calls over asynchronous
// messaging) plus fire-and-forget publishing with a completion result.
//
// On a client with native request/reply (the NATS adapter, in both core and
// JetStream modes) Requester and Serve use it instead: a reply inbox per
// request, no reply topic, and a request with nobody serving it fails at
// once. The handler, the HeaderDeadline check and the errors are the same;
// WithoutNative turns this off. Native requests are core NATS messages: never
// stored, at most once.
//
// Otherwise a Requester owns one reply topic, named reply.<random>, read by an
// ephemeral subscription for as long as the Requester is open. Request
// publishes the request with two headers, reply-to (that topic) and
// correlation-id (a fresh ID), and waits for the reply carrying the same
// correlation ID, or for its context / timeout. Serve runs a handler for the
// requests of a topic, as a consumer group so that several servers share the
// load, and publishes each result (or the handler's error) to the request's
// reply-to topic.
//
// Delivery of requests is at-least-once: a request may be handled twice
// (a crash after replying but before the acknowledgement); the duplicate
// reply is dropped by the Requester. A reply arriving after Request gave up
// is dropped too. Requests are never retried by the Requester: whether a
// timed-out call had an effect is unknown, as with any RPC.
package reqreply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/optcheck"
	"github.com/msgkit/messaging/patterns/codec"
)

// Headers carried by requests and replies.
const (
	HeaderReplyTo       = "reply-to"
	HeaderCorrelationID = "correlation-id"
	// HeaderError is set on a reply when the handler failed; it holds the
	// error text.
	HeaderError = "reply-error"
	// HeaderDeadline carries the caller's deadline (RFC 3339), in both
	// modes, so a server does not work on requests the caller has given up
	// on. Servers compare it with their own clock: keep the clocks in sync.
	HeaderDeadline = "reply-deadline"
)

// DefaultTimeout bounds a Request whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// ErrTimeout is returned (wrapped together with context.DeadlineExceeded when
// the context expired, while sending the request or waiting for the reply)
// when no reply came in time.
var ErrTimeout = errors.New("reqreply: no reply in time")

// RemoteError is a handler's error as reported back to the caller.
type RemoteError struct {
	Topic string // the request topic
	Msg   string // the handler's error text
}

// Error describes the remote failure with the request topic.
func (e *RemoteError) Error() string { return "reqreply: " + e.Topic + ": remote error: " + e.Msg }

// Option configures a Requester or Serve. An Option given an invalid
// value, or one that does not apply to the function it is given to, makes
// it fail with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	codec         codec.Codec
	timeout       time.Duration
	group         string
	subOpts       []messaging.SubscribeOption
	mws           []messaging.Middleware
	noNative      bool
	logger        *slog.Logger
	requesterOnly string // the first NewRequester-only option given
	serveOnly     string // the first Serve-only option given
}

// newConfig applies opts in order and returns the first error; fn names the
// caller, NewRequester or Serve.
func newConfig(fn string, opts []Option) (config, error) {
	c := config{codec: codec.JSON, timeout: DefaultTimeout, logger: slog.Default()}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	other := c.serveOnly
	if fn == "Serve" {
		other = c.requesterOnly
	}
	if other != "" {
		return config{}, fmt.Errorf("reqreply: %s: %s does not apply here: %w", fn, other, messaging.ErrInvalidOption)
	}
	return c, nil
}

// WithCodec sets the codec for requests and replies (default codec.JSON). A
// nil c is invalid.
func WithCodec(c codec.Codec) Option {
	return func(cfg *config) error {
		if c == nil {
			return optcheck.Invalid("reqreply", "WithCodec", "nil", "needs a codec")
		}
		cfg.codec = c
		return nil
	}
}

// WithTimeout sets how long a Request waits when its context has no earlier
// deadline (default DefaultTimeout; must be positive). NewRequester only.
func WithTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return optcheck.Invalid("reqreply", "WithTimeout", d, "must be positive")
		}
		cfg.timeout = d
		cfg.requesterOnly = cmp.Or(cfg.requesterOnly, "WithTimeout")
		return nil
	}
}

// WithGroup sets the consumer group Serve uses (default "reqreply.<topic>");
// servers of one topic in the same group share the requests. g must be a
// valid name. Serve only.
func WithGroup(g string) Option {
	return func(cfg *config) error {
		if err := messaging.ValidateName(g); err != nil {
			return optcheck.Invalid("reqreply", "WithGroup", fmt.Sprintf("%q", g), err.Error())
		}
		cfg.group = g
		cfg.serveOnly = cmp.Or(cfg.serveOnly, "WithGroup")
		return nil
	}
}

// WithSubscribeOptions passes options (Concurrency, ...) to Serve's
// Subscribe. Nil options are ignored. Serve only.
func WithSubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(cfg *config) error {
		cfg.subOpts = append(cfg.subOpts, opts...)
		cfg.serveOnly = cmp.Or(cfg.serveOnly, "WithSubscribeOptions")
		return nil
	}
}

// WithMiddleware wraps Serve's message handler (outermost first). Nil
// middleware is invalid. Serve only.
func WithMiddleware(mws ...messaging.Middleware) Option {
	return func(cfg *config) error {
		if err := optcheck.Middleware("reqreply", mws); err != nil {
			return err
		}
		cfg.mws = append(cfg.mws, mws...)
		cfg.serveOnly = cmp.Or(cfg.serveOnly, "WithMiddleware")
		return nil
	}
}

// WithLogger sets where Serve reports a handler's panic, with its stack
// (default slog.Default()). A nil l is invalid. Serve only.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) error {
		if l == nil {
			return optcheck.Invalid("reqreply", "WithLogger", "nil", "needs a logger")
		}
		cfg.logger = l
		cfg.serveOnly = cmp.Or(cfg.serveOnly, "WithLogger")
		return nil
	}
}

// Requester sends requests of type Req and waits for replies of type Resp.
// It is safe for concurrent use; one Requester serves any number of
// concurrent calls over its single reply topic.
type Requester[Req, Resp any] struct {
	client     messaging.Client
	cfg        config
	replyTopic string
	sub        messaging.Subscription
	native     messaging.Requester

	mu      sync.Mutex
	waiting map[string]chan *messaging.Message
	closed  bool
}

// NewRequester creates the Requester's reply topic and subscribes to it; it
// returns once replies can be received. Close it to remove the topic. A nil
// client is rejected with an error wrapping messaging.ErrInvalidOption; opts
// are applied in order and the first error is returned.
func NewRequester[Req, Resp any](ctx context.Context, client messaging.Client, opts ...Option) (*Requester[Req, Resp], error) {
	if client == nil {
		return nil, fmt.Errorf("reqreply: NewRequester: nil client: %w", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig("NewRequester", opts)
	if err != nil {
		return nil, err
	}
	r := &Requester[Req, Resp]{
		client:     client,
		cfg:        cfg,
		replyTopic: "reply." + strings.ReplaceAll(newID(), "-", ""),
		waiting:    map[string]chan *messaging.Message{},
	}
	if nr, ok := native(client, r.cfg); ok {
		r.native, r.replyTopic = nr, ""
		return r, nil
	}
	// The subscription outlives ctx (which only bounds setting it up).
	sub, err := client.Subscribe(context.WithoutCancel(ctx), r.replyTopic, r.onReply)
	if err != nil {
		return nil, fmt.Errorf("reqreply: subscribe to replies: %w", err)
	}
	r.sub = sub
	return r, nil
}

// ReplyTopic is the topic this Requester receives replies on; empty with
// native request/reply.
func (r *Requester[Req, Resp]) ReplyTopic() string { return r.replyTopic }

func (r *Requester[Req, Resp]) onReply(_ context.Context, m *messaging.Message) error {
	id := m.Header[HeaderCorrelationID]
	r.mu.Lock()
	ch, ok := r.waiting[id]
	if ok {
		delete(r.waiting, id) // a duplicate reply finds nobody waiting
	}
	r.mu.Unlock()
	if ok {
		ch <- m // buffered, never blocks
	}
	return nil
}

// Request sends req to topic and returns the decoded reply. It fails with
// ErrTimeout when no reply came before ctx's deadline or the Requester's
// timeout, whichever is first, including when that deadline passed while
// the request was being sent (the error wraps context.DeadlineExceeded
// too); with a *RemoteError when the handler failed; with an error wrapping
// ctx.Err() (context.Canceled, never ErrTimeout) when ctx is cancelled; with
// an error wrapping messaging.ErrClosed after Close.
func (r *Requester[Req, Resp]) Request(ctx context.Context, topic string, req Req) (Resp, error) {
	var zero Resp
	start := time.Now()
	m, err := codec.Encode(r.cfg.codec, req)
	if err != nil {
		return zero, err // it carries its prefix
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	m.Header[HeaderDeadline] = deadline.UTC().Format(time.RFC3339Nano)
	if r.native != nil {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return zero, fmt.Errorf("reqreply: request: %w", messaging.ErrClosed)
		}
		return nativeRequest[Resp](ctx, r.native, r.cfg, topic, m, start)
	}
	corr := newID()
	m.Header[HeaderReplyTo] = r.replyTopic
	m.Header[HeaderCorrelationID] = corr

	ch := make(chan *messaging.Message, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return zero, fmt.Errorf("reqreply: request: %w", messaging.ErrClosed)
	}
	r.waiting[corr] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, corr)
		r.mu.Unlock()
	}()

	if err := r.client.Publish(ctx, topic, m); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// The deadline passed while sending: a timeout, as in native mode
			// (where sending and waiting are one call).
			return zero, fmt.Errorf("%w from %s after %v, sending the request: %w", ErrTimeout, topic, since(start), err)
		}
		return zero, fmt.Errorf("reqreply: send request to %s: %w", topic, err)
	}
	select {
	case reply := <-ch:
		if e, failed := reply.Header[HeaderError]; failed {
			return zero, &RemoteError{Topic: topic, Msg: e}
		}
		v, err := codec.Decode[Resp](r.cfg.codec, reply)
		if err != nil {
			return zero, fmt.Errorf("reqreply: reply from %s: %w", topic, err)
		}
		return v, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("%w from %s after %v: %w", ErrTimeout, topic, since(start), ctx.Err())
		}
		return zero, fmt.Errorf("reqreply: request to %s: %w", topic, ctx.Err())
	}
}

// call runs h on req, request m of topic, turning a panic into an error
// wrapping messaging.ErrHandlerPanic (the caller's answer: the panic's value,
// no stack trace) and logging it with the stack.
func call[Req, Resp any](ctx context.Context, cfg config, topic string, h HandlerFunc[Req, Resp], req Req, m *messaging.Message) (resp Resp, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero Resp
			resp, err = zero, fmt.Errorf("%w: %v", messaging.ErrHandlerPanic, r)
			cfg.logger.Error("reqreply: handler panicked; the caller is answered with the error", "topic", topic, "id", m.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	return h(ctx, req)
}

// since is the time elapsed since start, as Request's errors report it.
func since(start time.Time) time.Duration { return time.Since(start).Round(time.Millisecond) }

// expired reports whether request m's caller has given up: the deadline in
// its HeaderDeadline has passed. A request without one never expires.
func expired(m *messaging.Message) bool {
	d, err := time.Parse(time.RFC3339Nano, m.Header[HeaderDeadline])
	return err == nil && time.Now().After(d)
}

// Close stops receiving replies (pending Requests time out), and deletes the
// reply topic when the client is a messaging.TopicDeleter. It does not close
// the client. It is idempotent.
func (r *Requester[Req, Resp]) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	if r.sub == nil {
		return nil // native: nothing to release
	}
	err := r.sub.Close()
	if d, ok := r.client.(messaging.TopicDeleter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if derr := d.DeleteTopic(ctx, r.replyTopic); derr != nil && err == nil {
			err = fmt.Errorf("reqreply: delete reply topic %s: %w", r.replyTopic, derr)
		}
	}
	return err
}

// HandlerFunc answers one request. A returned error is sent back to the
// caller as a *RemoteError (the request is not retried). So is a panic, as
// an error wrapping messaging.ErrHandlerPanic with the panic's value; the
// caller gets no stack trace, Serve logs it (WithLogger).
type HandlerFunc[Req, Resp any] func(ctx context.Context, req Req) (Resp, error)

// Serve handles the requests published to topic with h until ctx is done or
// the returned Subscription is closed. Servers of the same topic share the
// requests (they form one consumer group, see WithGroup). A request whose
// caller's deadline (HeaderDeadline) has passed when its turn comes is
// dropped without calling h, in both modes: the middleware sees it handled
// successfully and, over topics, no reply is sent (natively, where every
// request is answered, the answer is an error that Request reports as
// ErrTimeout, should the caller still wait: clocks out of sync). An error of
// h is the answer, in both modes: the middleware sees the request handled
// (a retry layer does not run h again). If publishing the reply fails, the
// request is redelivered over topics; a native request is at most once, and
// its caller times out. A nil client or h is
// rejected with an error wrapping messaging.ErrInvalidOption; opts are
// applied in order and the first error is returned.
func Serve[Req, Resp any](ctx context.Context, client messaging.Client, topic string, h HandlerFunc[Req, Resp], opts ...Option) (messaging.Subscription, error) {
	if client == nil {
		return nil, fmt.Errorf("reqreply: Serve: nil client: %w", messaging.ErrInvalidOption)
	}
	if h == nil {
		return nil, fmt.Errorf("reqreply: Serve: nil handler: %w", messaging.ErrInvalidOption)
	}
	if err := optcheck.Topic("reqreply", "Serve", topic); err != nil {
		return nil, err
	}
	cfg, err := newConfig("Serve", opts)
	if err != nil {
		return nil, err
	}
	group := cfg.group
	if group == "" {
		group = "reqreply." + topic
	}
	if nr, ok := native(client, cfg); ok {
		return nativeServe(ctx, nr, cfg, topic, group, h)
	}
	handle := func(ctx context.Context, m *messaging.Message) error {
		replyTo, corr := m.Header[HeaderReplyTo], m.Header[HeaderCorrelationID]
		if replyTo == "" || corr == "" {
			return messaging.Permanent(fmt.Errorf("reqreply: request %s on %s has no %s or %s header", m.ID, topic, HeaderReplyTo, HeaderCorrelationID))
		}
		if expired(m) {
			return nil // the caller has given up: answering is wasted work
		}
		var reply *messaging.Message
		req, err := codec.Decode[Req](cfg.codec, m)
		if err == nil {
			var resp Resp
			if resp, err = call(ctx, cfg, topic, h, req, m); err == nil {
				reply, err = codec.Encode(cfg.codec, resp)
			}
		}
		if err != nil {
			reply = &messaging.Message{Header: messaging.Header{HeaderError: err.Error()}}
		}
		reply.Header[HeaderCorrelationID] = corr
		if err := client.Publish(ctx, replyTo, reply); err != nil {
			return fmt.Errorf("reqreply: send reply to %s: %w", replyTo, err)
		}
		return nil
	}
	subOpts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...), messaging.Group(group))
	sub, err := client.Subscribe(ctx, topic, messaging.Chain(handle, cfg.mws...), subOpts...)
	if err != nil {
		return nil, fmt.Errorf("reqreply: serve %s: %w", topic, err)
	}
	return sub, nil
}
