// Package prepare checks and completes messages before an adapter sends
// them, and checks the arguments of its admin calls. Package driver
// publishes it to adapters (driver.PreparePublish, driver.NewID,
// driver.CheckAdmin, ...); it lives here so that its errors, which are
// those of the contract's calls on every adapter, read "messaging: ".
package prepare

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/messaging"
)

// idRandom buffers crypto/rand for message IDs: one read of the system's
// random source serves 256 IDs, which makes IDs cheap on the publish path.
// It is this package's own buffer: uuid.EnableRandPool would change the
// uuid package for the whole program, which a library must not do.
var idRandom io.Reader = &lockedReader{r: bufio.NewReaderSize(rand.Reader, 16*256)}

type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadFull(l.r, p)
}

// NewID returns a new message ID: a version 7 UUID (RFC 9562), which starts
// with the current time (milliseconds, then 12 bits of the millisecond in
// 256 ns steps, as google/uuid makes them; monotonic within the process), so
// IDs sort by creation time and index well in deduplication stores, and
// IDTime recovers the time.
func NewID() string {
	id, _ := newID()
	return id
}

func newID() (string, time.Time) {
	u, err := uuid.NewV7FromReader(idRandom)
	if err != nil {
		u, _ = uuid.NewV7() // crypto/rand failing is fatal in Go >= 1.24; not reached
	}
	return u.String(), v7Time(u)
}

// IDTime returns the time a version 7 UUID such as NewID's carries; ok is
// false when id is not one. Adapters whose broker has no precise timestamp
// use it to leave out a separate time field when a message's Time is its
// ID's (as Publish makes it when it sets both).
func IDTime(id string) (t time.Time, ok bool) {
	if len(id) != 36 {
		return time.Time{}, false
	}
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		return time.Time{}, false
	}
	return v7Time(u), true
}

// v7Time decodes the time google/uuid puts in a version 7 UUID: 48 bits of
// Unix milliseconds, then the 12-bit "rand_a" holding the sub-millisecond
// nanoseconds shifted right by 8 (RFC 9562, section 6.2, method 3).
func v7Time(u uuid.UUID) time.Time {
	ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
	sub := int64(u[6]&0x0f)<<8 | int64(u[7])
	// google/uuid bumps rand_a by one per ID when IDs come faster than
	// 256 ns, past 3906 (a whole millisecond) at the end of a busy
	// millisecond; the millisecond field stays authoritative, so the
	// sub-millisecond part is capped below it and decoded times never go
	// backwards from one ID to the next.
	// UnixMilli: ms in nanoseconds would overflow int64 after 2262.
	return time.UnixMilli(ms).Add(time.Duration(min(sub<<8, int64(time.Millisecond)-1)))
}

// Publish validates topic and msgs for a Publish call and fills in missing IDs
// and times: a message with neither gets a NewID and that ID's time (see
// IDTime), one with only an ID the current time, one with only a time a
// NewID. maxSize > 0 rejects messages whose Size exceeds it with an error
// wrapping messaging.ErrMessageTooLarge; nothing is sent then.
func Publish(topic string, msgs []*messaging.Message, maxSize int) error {
	return check(topic, msgs, maxSize, true)
}

// Check validates topic and msgs as Publish does, leaving IDs and times as
// they are: for adapters that do not claim
// messaging.Capabilities.PublishAssignsID (core NATS).
func Check(topic string, msgs []*messaging.Message, maxSize int) error {
	return check(topic, msgs, maxSize, false)
}

// CheckMessage is Check of the one message m of a call, for a caller that
// has validated topic already (with messaging.ValidateName): the same
// checks, the same errors.
func CheckMessage(topic string, m *messaging.Message, maxSize int) error {
	return checkMessage(topic, 0, 1, m, maxSize)
}

// Nth names message i of a call of n messages in an error, "message 3: ",
// and is empty for a call of one message (PublishAsync's, or a Publish of
// one), whose caller knows which message failed.
func Nth(i, n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf("message %d: ", i)
}

// The range of Message.Time every adapter carries exactly: Kafka's record
// timestamps are positive Unix milliseconds; the other adapters carry Unix
// nanoseconds in an int64.
var (
	minTime = time.UnixMilli(1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// checkMessage checks m, message i of a call of n, named in its errors
// as Nth names it.
func checkMessage(topic string, i, n int, m *messaging.Message, maxSize int) error {
	if m == nil {
		return fmt.Errorf("messaging: publish to %s: %snil message: %w", topic, Nth(i, n), messaging.ErrInvalidOption)
	}
	if err := messaging.ValidateHeader(m.Header); err != nil {
		return fmt.Errorf("messaging: publish to %s: %s%w", topic, Nth(i, n), err)
	}
	if !m.Time.IsZero() && (m.Time.Before(minTime) || m.Time.After(maxTime)) {
		return fmt.Errorf("messaging: publish to %s: %sTime %v is outside %v to %v, which brokers carry (Unix milli- or nanoseconds): %w",
			topic, Nth(i, n), m.Time, minTime.UTC(), maxTime.UTC(), messaging.ErrInvalidOption)
	}
	if maxSize > 0 {
		if size := m.Size(); size > maxSize {
			return fmt.Errorf("messaging: publish to %s: %s%d bytes, limit %d: %w", topic, Nth(i, n), size, maxSize, messaging.ErrMessageTooLarge)
		}
	}
	return nil
}

func check(topic string, msgs []*messaging.Message, maxSize int, fill bool) error {
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("messaging: publish: topic: %w", err)
	}
	var now time.Time
	for i, m := range msgs {
		if err := checkMessage(topic, i, len(msgs), m, maxSize); err != nil {
			return err
		}
		if !fill {
			continue
		}
		switch {
		case m.ID == "" && m.Time.IsZero():
			m.ID, m.Time = newID()
		case m.ID == "":
			m.ID = NewID()
		case m.Time.IsZero():
			if now.IsZero() {
				now = time.Now()
			}
			m.Time = now
		}
	}
	return nil
}
