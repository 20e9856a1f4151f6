package memory

import (
	"fmt"
	"log/slog"

	"github.com/msgkit/messaging"
)

// Option configures a Broker or a Client.
type Option func(*config)

type config struct {
	retention      int
	maxMessageSize int
	logger         *slog.Logger
}

func newConfig(opts []Option) config {
	c := config{maxMessageSize: DefaultMaxMessageSize, logger: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithRetention keeps at most n messages per topic (the oldest are dropped,
// and groups that had not reached them skip them); 0 keeps everything. It
// applies to a Broker.
func WithRetention(n int) Option { return func(c *config) { c.retention = max(n, 0) } }

// WithMaxMessageSize sets the largest Message.Size a Client publishes
// (default 1 MiB); 0 means no limit.
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMessageSize = max(n, 0) } }

// WithLogger sets where a Client reports what it cannot return (messages
// given up after MaxAttempts). Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

func errInvalidOffset(p messaging.Position) error {
	return fmt.Errorf("%w: memory offsets are decimal integers >= 0, got %v", messaging.ErrInvalidOption, p)
}
