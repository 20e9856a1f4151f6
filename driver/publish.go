package driver

import (
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/prepare"
)

// The publishing side of an adapter: its Publish checks and completes the
// messages of a call with PreparePublish (CheckPublish where it does not
// assign IDs) before it sends any of them, so bad input fails with the same
// errors, wrapping the same sentinels, on every adapter. The errors read
// "messaging: ...": they are the contract's.

// PreparePublish validates topic (messaging.ValidateName) and msgs for a
// Publish call and fills in missing IDs and times: a message with neither
// gets a NewID and that ID's time (see IDTime), one with only an ID the
// current time, one with only a time a NewID. It fails on an invalid topic
// (messaging.ErrInvalidTopic), a nil message or a Time brokers cannot
// carry (messaging.ErrInvalidOption; see messaging.Message.Time), an
// invalid header (messaging.ErrInvalidHeader) and, with maxSize > 0, a
// message whose Size exceeds maxSize (messaging.ErrMessageTooLarge),
// naming the message's index in a call of several (see Nth); then the
// adapter must send none of msgs (the messages before the failed one may
// have been given their IDs). An adapter that claims
// messaging.Capabilities.PublishAssignsID calls it.
func PreparePublish(topic string, msgs []*messaging.Message, maxSize int) error {
	return prepare.Publish(topic, msgs, maxSize)
}

// CheckPublish validates topic and msgs as PreparePublish does, leaving IDs
// and times as they are: for adapters, or modes, that do not claim
// messaging.Capabilities.PublishAssignsID.
func CheckPublish(topic string, msgs []*messaging.Message, maxSize int) error {
	return prepare.Check(topic, msgs, maxSize)
}

// CheckMessage is CheckPublish of the one message m of a call, for a caller
// that has validated topic already: the same checks, the same errors.
func CheckMessage(topic string, m *messaging.Message, maxSize int) error {
	return prepare.CheckMessage(topic, m, maxSize)
}

// Nth names message i of a call of n messages in an adapter's error, as
// PreparePublish's errors do: "message 3: ", or "" for a call of one
// message (PublishAsync's, or a Publish of one), whose caller knows which
// message failed.
func Nth(i, n int) string { return prepare.Nth(i, n) }

// NewID returns a new message ID: a version 7 UUID (RFC 9562), which starts
// with the current time, so IDs sort by creation time and index well in
// deduplication stores. It is safe for concurrent use and cheap (one read
// of the system's random source serves 256 IDs).
func NewID() string { return prepare.NewID() }

// IDTime returns the time a version 7 UUID such as NewID's carries (to
// 256 ns); ok is false when id is not one. An adapter whose broker keeps no
// precise timestamp can leave out a message's time field when its Time is
// its ID's, as PreparePublish makes it when it sets both.
func IDTime(id string) (t time.Time, ok bool) { return prepare.IDTime(id) }
