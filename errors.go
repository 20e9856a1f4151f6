package messaging

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors callers branch on with errors.Is. Adapters wrap them with
// details (%w), so the message says what was wrong and errors.Is still works.
var (
	// ErrClosed is returned by calls on a client, publisher, consumer or
	// subscription after Close.
	ErrClosed = errors.New("messaging: closed")

	// ErrUnknownScheme is returned by Open for a URL whose scheme no adapter
	// registered. The usual cause is a missing blank import of the adapter.
	ErrUnknownScheme = errors.New("messaging: unknown URL scheme")

	// ErrInvalidURL is returned by Open for a URL that cannot be parsed or
	// lacks a required part.
	ErrInvalidURL = errors.New("messaging: invalid URL")

	// ErrInvalidOption is returned for an unknown or malformed option, URL
	// query parameter or subscribe option.
	ErrInvalidOption = errors.New("messaging: invalid option")

	// ErrMessageTooLarge is returned by Publish, before anything is sent, when
	// a message exceeds the adapter's maximum message size.
	ErrMessageTooLarge = errors.New("messaging: message too large")

	// ErrInvalidHeader is returned by Publish, before anything is sent, for
	// a header entry that breaks the rule every adapter applies (see
	// ValidateHeader).
	ErrInvalidHeader = errors.New("messaging: invalid header")

	// ErrDuplicate is returned by Publish, inside a *PublishError, for a
	// message the broker dropped because it already holds one with the same
	// ID (deduplication; see each adapter's documentation for the window).
	// The message is not lost: the broker has its first copy.
	ErrDuplicate = errors.New("messaging: duplicate message ID")

	// ErrInvalidTopic is returned for a topic or group name that is empty or
	// not valid for the library (see ValidateName).
	ErrInvalidTopic = errors.New("messaging: invalid topic or group name")

	// ErrUnsupported is returned when an operation needs a capability the
	// adapter does not have (for example a Position on a broker without a log).
	ErrUnsupported = errors.New("messaging: not supported by this adapter")

	// ErrUnavailable is the failure of a Publish that could not reach the
	// broker: every adapter waits for an unreachable broker (reconnecting,
	// retrying) up to its unavailable_timeout (default
	// DefaultUnavailableTimeout, or until the context ends, whichever comes
	// first) and then fails the messages not confirmed with an error
	// wrapping ErrUnavailable. Publish never blocks without bound while the
	// broker is down. A message failed this way may still have been written
	// (its confirmation was lost): retrying can duplicate, never lose. The
	// topology and admin calls (Provision, DeleteTopic, Inspect, Topics, the
	// setup of Subscribe and Stream.Read, and TopicExists where an adapter
	// has it) follow the same rule, counted from the call: ErrUnavailable
	// after the unavailable timeout, or ctx's error when ctx ends first; a
	// call with nothing to ask the broker (core NATS's Provision) succeeds
	// (integration/fault.AdminWhileUnreachable checks every adapter).
	ErrUnavailable = errors.New("messaging: broker unavailable")

	// ErrHandlerPanic wraps the value of a panic recovered from a handler; the
	// message is redelivered like for any other handler error.
	ErrHandlerPanic = errors.New("messaging: handler panicked")

	// ErrTopicDeleted ends a subscription (see Subscription.Err) or a Read
	// whose topic was deleted while it ran. Nothing more can arrive on it;
	// subscribing again creates the topic anew where the broker does.
	ErrTopicDeleted = errors.New("messaging: topic deleted")

	// ErrTopicNotFound is returned by Inspector.Inspect for a topic the
	// broker does not hold, and by Publish (and PublishAsync) of an adapter
	// configured not to create topics for a topic that does not exist
	// (Kafka with auto_create=false, NATS JetStream with existing streams
	// only, WithExistingStreams).
	ErrTopicNotFound = errors.New("messaging: topic not found")
)

// DefaultUnavailableTimeout is how long Publish waits for an unreachable
// broker before failing with ErrUnavailable, unless the adapter is
// configured otherwise (URL parameter unavailable_timeout).
const DefaultUnavailableTimeout = 5 * time.Second

// permanentError marks an error as not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that a handler returning it tells the adapter not to
// redeliver the message: the adapter acknowledges it (or terminates it, or
// dead-letters it natively where configured). Use it for failures that will
// never succeed, such as a payload that does not decode. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError asks for redelivery after a delay.
type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter wraps err so that a handler returning it asks for redelivery no
// sooner than delay from now. Adapters with native delayed redelivery let the
// broker wait (JetStream NakWithDelay, for example); the others hold the
// message back themselves. RetryAfter(nil, d) is nil.
func RetryAfter(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: max(delay, 0)}
}

// RetryDelay returns the delay requested with RetryAfter somewhere in err's
// chain, and whether there was one.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.delay, true
	}
	return 0, false
}

// IgnoreDuplicates returns nil when err reports nothing but duplicates
// (err wraps ErrDuplicate, or every failed message of a *PublishError
// does), and err otherwise. Callers that publish the same message again on
// purpose (after an uncertain outcome, or a crash before a checkpoint) use
// it: the broker holds the message once. An error that joins a duplicate
// with another failure (errors.Join, several %w) is returned: only errors
// made of duplicates alone are ignored.
func IgnoreDuplicates(err error) error {
	if err == nil || onlyDuplicates(err) {
		return nil
	}
	return err
}

// onlyDuplicates reports whether every branch of err's tree ends in
// ErrDuplicate.
func onlyDuplicates(err error) bool {
	if err == ErrDuplicate {
		return true
	}
	if x, ok := err.(interface{ Is(error) bool }); ok && x.Is(ErrDuplicate) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if e != nil && !onlyDuplicates(e) {
				return false
			}
		}
		return true // a PublishError with no failure, as before
	case interface{ Unwrap() error }:
		inner := u.Unwrap()
		return inner != nil && onlyDuplicates(inner)
	}
	return false
}

// PublishError reports which messages of one Publish call the broker did not
// accept. Errs has one entry per message, in the order given to Publish; a nil
// entry means that message was accepted. Its text names how many failed and
// the index and error of the first; for a call of one message, only that
// message's error.
type PublishError struct {
	Errs []error
}

// Failed returns the indexes of the messages that were not accepted.
func (e *PublishError) Failed() []int {
	var idx []int
	for i, err := range e.Errs {
		if err != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

func (e *PublishError) Error() string {
	failed := e.Failed()
	if len(failed) == 0 {
		return "messaging: publish: no error"
	}
	first := e.Errs[failed[0]]
	if len(e.Errs) == 1 {
		// A call of one message: no count, no index to name.
		return "messaging: publish: " + first.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "messaging: publish: %d of %d messages failed (first, message %d: %v)", len(failed), len(e.Errs), failed[0], first)
	return b.String()
}

// Unwrap returns the distinct non-nil errors, so errors.Is(err, ErrClosed)
// and similar checks see through a PublishError.
func (e *PublishError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
