// Package deadletter moves messages whose handling finally failed to a
// dead-letter topic, and lets an operator list, inspect and redrive them.
//
// # The middleware
//
// New(pub, topic) wraps a handler. When the handler fails for the last time —
// its error is marked messaging.Permanent (a retry layer inside does this on
// the last attempt), the delivery is the last the subscription's
// messaging.MaxAttempts allows (on the consumers of this module, which tell
// the handler context), or, with WithMaxAttempts(n), Message.Attempt >= n —
// the layer publishes a copy of the message to the dead-letter topic with pub
// (any Publisher, any backend) and returns nil, so the original is
// acknowledged only once the dead letter is safely stored. If that publish
// fails, the layer returns a non-permanent error (with a RetryAfter delay):
// the original is not acknowledged and comes back, unless it was the
// subscription's last attempt: the subscription then gives it up (logged, or
// the broker's own dead-lettering where it has one). Leave some attempts
// after the layer's own limit (MaxAttempts higher than WithMaxAttempts or a
// retry layer's) so that a failed dead-letter publish is tried again.
//
// Other failures are returned unchanged, for the adapter to redeliver. A
// panic in the handler is treated as an error wrapping
// messaging.ErrHandlerPanic.
//
// The dead letter keeps the payload, the key and every header, and gains
// headers with the prefix HeaderPrefix: the failure reason, the attempt
// count, the original topic, group and message ID, and the time it was
// dead-lettered. It gets a new ID (HeaderID keeps the original): brokers
// such as JetStream deduplicate by ID, which would swallow a copy that
// reused it.
//
// Put the layer outside retry. Inside a retry layer it also works: it sees
// the retry layer around it and treats the retry layer's last attempt as
// final.
//
// # Inspecting and redriving
//
// Queue lists the dead letters of a topic, gets one by ID and redrives some
// or all of them: each is republished to its original topic with its payload,
// key and headers, the dead-letter headers removed, under a new ID. Queue
// reads the dead-letter topic from its start with messaging.Stream, so it
// needs an adapter that implements Stream (Capabilities().Replay) for the
// dead-letter topic; the middleware itself works with any Publisher. A dead
// letter stays in the topic's log after a redrive: Queue records the redrive
// by appending a control message (header HeaderControl) to the dead-letter
// topic and hides redriven letters from then on. Consumers that subscribe to
// a dead-letter topic themselves should skip messages for which IsControl
// reports true.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/dlheader"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// The headers a dead letter gains: those of package dlheader, the envelope the
// Redis adapter's native dead-lettering writes too. All start with
// HeaderPrefix; a redrive removes every header with that prefix.
const (
	HeaderPrefix = dlheader.HeaderPrefix
	// HeaderReason is the handler's error text (truncated to MaxReasonLength).
	HeaderReason = dlheader.HeaderReason
	// HeaderAttempts is the decimal Message.Attempt of the last delivery.
	HeaderAttempts = dlheader.HeaderAttempts
	// HeaderTopic is the topic the message was consumed from.
	HeaderTopic = dlheader.HeaderTopic
	// HeaderGroup is the consumer group that failed to handle it (may be empty).
	HeaderGroup = dlheader.HeaderGroup
	// HeaderID is the original message ID.
	HeaderID = dlheader.HeaderID
	// HeaderTime is when the message was dead-lettered (RFC 3339, UTC, ns).
	HeaderTime = dlheader.HeaderTime
	// HeaderControl marks Queue's control messages in a dead-letter topic
	// (value "marker" or "redriven"); they are not dead letters.
	HeaderControl = HeaderPrefix + "control"
	// HeaderRedriven, on a "redriven" control message, is the ID of the dead
	// letter that was redriven.
	HeaderRedriven = HeaderPrefix + "redriven"
)

// MaxReasonLength bounds HeaderReason, since panic errors carry a stack.
const MaxReasonLength = dlheader.MaxReasonLength

// Defaults.
const (
	DefaultPublishTimeout = 10 * time.Second
	DefaultRetryDelay     = time.Second
)

// Option configures New. An Option given an invalid value makes New fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	maxAttempts    int
	publishTimeout time.Duration
	retryDelay     time.Duration
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("deadletter: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// WithMaxAttempts makes failures with Message.Attempt >= n final even when
// the error is not marked permanent: for use without a retry layer. 0 (the
// default) dead-letters only permanent errors (and the last attempt of a
// retry layer around it); a negative n is invalid.
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("WithMaxAttempts", n, "must not be negative")
		}
		c.maxAttempts = n
		return nil
	}
}

// WithPublishTimeout bounds the publish of a dead letter (default 10s; must
// be positive). The publish does not end when the handler's context is
// cancelled, so a subscription that is stopping still dead-letters what it
// finished.
func WithPublishTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithPublishTimeout", d, "must be positive")
		}
		c.publishTimeout = d
		return nil
	}
}

// WithRetryDelay is the RetryAfter delay asked for when the dead letter
// could not be published (default 1s; 0 asks for an immediate redelivery; a
// negative d is invalid).
func WithRetryDelay(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("WithRetryDelay", d, "must not be negative")
		}
		c.retryDelay = d
		return nil
	}
}

// New returns the dead-letter middleware publishing with pub to topic. A nil
// pub or an invalid topic name is rejected with an error wrapping
// messaging.ErrInvalidOption; opts are applied in order and the first error
// is returned.
func New(pub messaging.Publisher, topic string, opts ...Option) (messaging.Middleware, error) {
	if pub == nil {
		return nil, fmt.Errorf("deadletter: New: nil publisher: %w", messaging.ErrInvalidOption)
	}
	if err := messaging.ValidateName(topic); err != nil {
		return nil, fmt.Errorf("deadletter: New: topic: %w: %w", err, messaging.ErrInvalidOption)
	}
	c := config{publishTimeout: DefaultPublishTimeout, retryDelay: DefaultRetryDelay}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			outer, inRetry := layer.Outer(ctx, layer.Retry)
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.DeadLetter})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			err := layer.Call(ctx, next, msg)
			if err == nil {
				return nil
			}
			final := layer.GivenUp(ctx, msg, err) || // Permanent, or the subscription's last attempt
				(c.maxAttempts > 0 && msg.Attempt >= c.maxAttempts) ||
				(inRetry && outer.Final != nil && outer.Final(err, max(msg.Attempt, 1)))
			if !final || layer.Interrupted(ctx, err) { // the subscription redelivers an interrupted one
				return err
			}
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.publishTimeout)
			defer cancel()
			if perr := pub.Publish(pctx, topic, Letter(msg, err, time.Now())); perr != nil {
				// Not %w on err: a permanent handler error must not make this
				// one permanent, or the original would be acknowledged.
				// Kept: an outer retry layer must not give it up either.
				return layer.Kept(messaging.RetryAfter(fmt.Errorf("deadletter: publish to %s failed, message %s kept: %w (handler error: %v)", topic, msg.ID, perr, err), c.retryDelay))
			}
			layer.DeadLettered(ctx, topic)
			return nil
		}
	}, nil
}

// Letter returns the dead letter for msg failed with err at time at: payload,
// key and headers copied, the HeaderPrefix headers set, no ID (Publish
// assigns a new one).
func Letter(msg *messaging.Message, err error, at time.Time) *messaging.Message {
	h := make(messaging.Header, len(msg.Header)+6)
	maps.Copy(h, msg.Header)
	dlheader.Set(h, dlheader.FailureOf(msg, err, at))
	return &messaging.Message{Key: msg.Key, Payload: append([]byte(nil), msg.Payload...), Header: h}
}

// Entry is one dead letter, parsed.
type Entry struct {
	// Message is the dead letter as stored in the dead-letter topic; its ID
	// identifies the entry.
	Message *messaging.Message
	// Reason, Attempts, Topic, Group, OriginalID and Time come from the
	// dead-letter headers.
	Reason     string
	Attempts   int
	Topic      string
	Group      string
	OriginalID string
	Time       time.Time
}

// ErrNotDeadLetter is returned by Parse for a message without the
// dead-letter headers.
var ErrNotDeadLetter = errors.New("deadletter: not a dead letter")

// ErrNotFound is returned by Queue.Get, and wrapped by Queue.Redrive, for an
// ID that names no pending dead letter.
var ErrNotFound = errors.New("deadletter: not found")

// Parse reads the dead-letter headers of m. It returns an error wrapping
// ErrNotDeadLetter for a message without HeaderTopic or for a control message.
func Parse(m *messaging.Message) (Entry, error) {
	if IsControl(m) {
		return Entry{}, fmt.Errorf("%w: message %s is a control message", ErrNotDeadLetter, m.ID)
	}
	topic, ok := m.Header[HeaderTopic]
	if !ok {
		return Entry{}, fmt.Errorf("%w: message %s has no %s header", ErrNotDeadLetter, m.ID, HeaderTopic)
	}
	e := Entry{
		Message: m, Topic: topic, Reason: m.Header[HeaderReason], Group: m.Header[HeaderGroup],
		OriginalID: m.Header[HeaderID],
	}
	e.Attempts, _ = strconv.Atoi(m.Header[HeaderAttempts])
	e.Time, _ = time.Parse(time.RFC3339Nano, m.Header[HeaderTime])
	return e, nil
}

// IsControl reports whether m is one of Queue's control messages rather than
// a dead letter.
func IsControl(m *messaging.Message) bool {
	_, ok := m.Header[HeaderControl]
	return ok
}

// Strip returns a copy of m's headers without the dead-letter headers.
func Strip(h messaging.Header) messaging.Header {
	out := maps.Clone(h)
	for k := range out {
		if strings.HasPrefix(k, HeaderPrefix) {
			delete(out, k)
		}
	}
	return out
}
