// Package dlheader defines the dead-letter envelope: the headers a dead-lettered
// message carries to say where it came from and why it was given up. The
// middleware (package middleware/deadletter) and the adapters that
// dead-letter natively with these headers (Redis, WithDeadLetterSuffix)
// build dead letters with Set, so the middleware's Queue (list, redrive)
// reads both the same way.
//
// Every header starts with HeaderPrefix; a redrive removes every header with
// that prefix. RabbitMQ's dead-letter exchange is not covered: the broker
// itself records the failure in its x-death header (except for a group
// queue that cannot dead-letter into the client's exchange, from which the
// RabbitMQ adapter publishes the dead letter itself, with Set).
package dlheader

import (
	"strconv"
	"strings"
	"time"

	"github.com/msgkit/messaging"
)

// The headers of a dead letter.
const (
	HeaderPrefix = "x-dead-letter-"
	// HeaderReason is the handler's error text (at most MaxReasonLength
	// bytes; "unknown" without an error).
	HeaderReason = HeaderPrefix + "reason"
	// HeaderAttempts is the decimal Message.Attempt of the last delivery.
	HeaderAttempts = HeaderPrefix + "attempts"
	// HeaderTopic is the topic the message was consumed from.
	HeaderTopic = HeaderPrefix + "topic"
	// HeaderGroup is the consumer group that gave it up (may be empty).
	HeaderGroup = HeaderPrefix + "group"
	// HeaderID is the original message ID.
	HeaderID = HeaderPrefix + "id"
	// HeaderTime is when the message was dead-lettered (RFC 3339, UTC, ns).
	HeaderTime = HeaderPrefix + "time"
	// HeaderOffset is the message's Offset in the topic it was consumed
	// from, set only by those that know it (the Redis adapter: the stream
	// entry ID).
	HeaderOffset = HeaderPrefix + "offset"
)

// MaxReasonLength bounds HeaderReason, since panic errors carry a stack.
const MaxReasonLength = 4096

// Failure is what a dead letter records about the message it was made from.
type Failure struct {
	Topic    string    // the topic it was consumed from
	Group    string    // the consumer group that gave it up; may be empty
	ID       string    // its message ID
	Offset   string    // its offset in Topic; empty leaves HeaderOffset out
	Attempts int       // Message.Attempt of its last delivery
	Err      error     // why it was given up; nil records "unknown"
	Time     time.Time // when it was dead-lettered; recorded in UTC
}

// FailureOf describes msg, given up with err at time at: its topic, group,
// ID and attempt (not its offset).
func FailureOf(msg *messaging.Message, err error, at time.Time) Failure {
	return Failure{Topic: msg.Topic, Group: msg.Group, ID: msg.ID, Attempts: msg.Attempt, Err: err, Time: at}
}

// Set makes h the headers of a dead letter for f: it removes every header
// starting with HeaderPrefix (those of an earlier dead-lettering) and sets
// the ones describing f. h must not be nil.
func Set(h messaging.Header, f Failure) {
	for k := range h {
		if strings.HasPrefix(k, HeaderPrefix) {
			delete(h, k)
		}
	}
	reason := "unknown"
	if f.Err != nil {
		reason = f.Err.Error()
	}
	h[HeaderReason] = reason[:min(len(reason), MaxReasonLength)]
	h[HeaderAttempts] = strconv.Itoa(f.Attempts)
	h[HeaderTopic] = f.Topic
	h[HeaderGroup] = f.Group
	h[HeaderID] = f.ID
	if f.Offset != "" {
		h[HeaderOffset] = f.Offset
	}
	h[HeaderTime] = f.Time.UTC().Format(time.RFC3339Nano)
}
