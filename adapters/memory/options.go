package memory

import (
	"fmt"
	"log/slog"

	"github.com/msgkit/messaging"
)

// Option configures a Broker or a Client. An Option given an invalid value,
// or given to a constructor it does not apply to, makes the constructor fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	maxLen         int64
	maxMessageSize int
	logger         *slog.Logger
	brokerOpt      string // the first broker option given ("" if none)
	clientOpt      string // the first client option given ("" if none)
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (config, error) {
	c := config{maxMessageSize: DefaultMaxMessageSize, logger: slog.Default()}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("memory: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

func (c *config) broker(name string) {
	if c.brokerOpt == "" {
		c.brokerOpt = name
	}
}

func (c *config) client(name string) {
	if c.clientOpt == "" {
		c.clientOpt = name
	}
}

// WithMaxLen keeps at most n messages per topic (the oldest are dropped,
// and groups that had not reached them skip them); 0 (the default) keeps
// everything; n must not be negative. It applies to a Broker (NewBroker, New).
func WithMaxLen(n int64) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("WithMaxLen", n, "must not be negative")
		}
		c.maxLen = n
		c.broker("WithMaxLen")
		return nil
	}
}

// WithMaxMessageSize sets the largest Message.Size a Client publishes
// (default 1 MiB); 0 means no limit; n must not be negative. It applies to a
// Client (Broker.NewClient, New).
func WithMaxMessageSize(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("WithMaxMessageSize", n, "must not be negative")
		}
		c.maxMessageSize = n
		c.client("WithMaxMessageSize")
		return nil
	}
}

// WithLogger sets where a Client reports what it cannot return (messages
// given up after MaxAttempts). Default slog.Default(); nil is invalid. It
// applies to a Client (Broker.NewClient, New).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("WithLogger", l, "nil logger")
		}
		c.logger = l
		c.client("WithLogger")
		return nil
	}
}

func errInvalidOffset(p messaging.Position) error {
	return fmt.Errorf("%w: memory offsets are decimal integers >= 0, got %v", messaging.ErrInvalidOption, p)
}
