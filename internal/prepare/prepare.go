// Package prepare checks and completes messages before an adapter sends them.
package prepare

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
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

// NewID returns a new message ID: a random UUID (version 4).
func NewID() string {
	id, err := uuid.NewRandomFromReader(idRandom)
	if err != nil {
		return uuid.NewString() // crypto/rand failing is fatal in Go >= 1.24; not reached
	}
	return id.String()
}

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
