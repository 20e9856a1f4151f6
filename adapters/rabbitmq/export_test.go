package rabbitmq

import (
	"time"

	"github.com/msgkit/messaging"
)

// WithAckDelay sets how long a successful delivery's acknowledgement may wait
// for a batch (default ackDelay). Tests use a long delay so that only the
// batch size, Close and a lost channel decide when acks go out.
func WithAckDelay(d time.Duration) Option {
	return func(c *config) error {
		c.ackDelay = d
		return nil
	}
}

// FrameSize is the size of the content header frame Publish sends for m
// (prepared: ID and Time set).
func FrameSize(m *messaging.Message) int {
	p, err := publishing(m)
	if err != nil {
		panic(err)
	}
	return contentHeaderSize(p) + frameOverhead
}

// GroupQueue is the name of a group's quorum queue.
func GroupQueue(topic, group string) string { return groupQueue(topic, group) }
