package poll

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/msgkit/messaging"
	ipoll "github.com/msgkit/messaging/internal/poll"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/codec"
)

// Option configures a Poller. An Option given an invalid value makes New
// fail with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	engine ipoll.Config
	codec  codec.Codec
}

// engine makes an option of the polling engine an Option.
func engine(o ipoll.Option) Option { return func(c *config) error { return o(&c.engine) } }

// WithStore sets where the checkpoint (cursor and ETag) is saved (default: a
// checkpoint.Memory, which does not survive the process); s must not be nil.
func WithStore(s checkpoint.Store) Option { return engine(ipoll.WithStore(s)) }

// WithInterval sets the pause between polls in Run once the source is caught
// up (default 5s); d must be positive.
func WithInterval(d time.Duration) Option { return engine(ipoll.WithInterval(d)) }

// WithMaxInterval caps the pauses of Run, which double while polls publish
// nothing or fail (default 1m, or WithInterval when that is longer); d must
// be positive and not below WithInterval.
func WithMaxInterval(d time.Duration) Option { return engine(ipoll.WithMaxInterval(d)) }

// WithJitter randomizes each pause of Run within ±f of it (default 0.2); f
// must be within [0, 1].
func WithJitter(f float64) Option { return engine(ipoll.WithJitter(f)) }

// WithSeen sets where the IDs of published items are remembered, so that
// they are not published again (default none: the cursor alone decides what
// is new); s must not be
// nil. A shared store (redisstore.DedupeStore) also covers restarts.
func WithSeen(s dedupe.Store) Option { return engine(ipoll.WithSeen(s)) }

// WithSeenTTL is how long a published item's ID is remembered (default 7
// days); d must be positive.
func WithSeenTTL(d time.Duration) Option { return engine(ipoll.WithSeenTTL(d)) }

// WithCodec sets the payload codec (default codec.JSON); cd must not be nil.
func WithCodec(cd codec.Codec) Option {
	return func(c *config) error {
		if cd == nil {
			return fmt.Errorf("poll: WithCodec(%v): nil codec: %w", cd, messaging.ErrInvalidOption)
		}
		c.codec = cd
		return nil
	}
}

// WithLogger sets where Run reports failed polls (default slog.Default()); l
// must not be nil.
func WithLogger(l *slog.Logger) Option { return engine(ipoll.WithLogger(l)) }
