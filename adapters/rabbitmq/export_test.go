package rabbitmq

import "time"

// WithAckDelay sets how long a successful delivery's acknowledgement may wait
// for a batch (default ackDelay). Tests use a long delay so that only the
// batch size, Close and a lost channel decide when acks go out.
func WithAckDelay(d time.Duration) Option {
	return func(c *config) error {
		c.ackDelay = d
		return nil
	}
}
