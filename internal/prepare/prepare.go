// Package prepare checks and completes messages before an adapter sends them.
package prepare

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/messaging"
)

func init() {
	// A pool of random bytes makes UUID generation cheap on the publish path.
	uuid.EnableRandPool()
}

// NewID returns a new message ID: a UUID (version 4).
func NewID() string { return uuid.NewString() }

// Publish validates topic and msgs for a Publish call and fills in missing IDs
// and times. maxSize > 0 rejects messages whose Size exceeds it with an error
// wrapping messaging.ErrMessageTooLarge; nothing is sent then.
func Publish(topic string, msgs []*messaging.Message, maxSize int) error {
	if err := messaging.ValidateName(topic); err != nil {
		return fmt.Errorf("publish: topic: %w", err)
	}
	var now time.Time
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("publish: message %d is nil: %w", i, messaging.ErrInvalidOption)
		}
		if maxSize > 0 {
			if n := m.Size(); n > maxSize {
				return fmt.Errorf("publish to %s: message %d is %d bytes, limit %d: %w", topic, i, n, maxSize, messaging.ErrMessageTooLarge)
			}
		}
		if m.ID == "" {
			m.ID = NewID()
		}
		if m.Time.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			m.Time = now
		}
	}
	return nil
}
