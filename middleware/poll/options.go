package poll

import (
	"log/slog"
	"time"

	ipoll "github.com/msgkit/messaging/internal/poll"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/patterns/checkpoint"
)

// Defaults of the options (patterns/poll's Poller has the same).
const (
	DefaultInterval    = ipoll.DefaultInterval    // 5s
	DefaultMaxInterval = ipoll.DefaultMaxInterval // 1m
	DefaultJitter      = ipoll.DefaultJitter      // 0.2
	DefaultSeenTTL     = ipoll.DefaultSeenTTL     // 7 days
)

// Option configures a Source. An Option given an invalid value makes
// NewSource fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type Option func(*config) error

type config = ipoll.Config

// WithInterval is the wait after a fetch without new items (default 5s); d
// must be positive.
func WithInterval(d time.Duration) Option { return ipoll.WithInterval(d) }

// WithMaxInterval caps the waits that grow after empty fetches and errors
// (default 1m, or WithInterval when that is longer); d must be positive and
// not below WithInterval.
func WithMaxInterval(d time.Duration) Option { return ipoll.WithMaxInterval(d) }

// WithJitter randomizes each wait within ±f of it (default 0.2); f must be
// within [0, 1].
func WithJitter(f float64) Option { return ipoll.WithJitter(f) }

// WithStore sets where the cursors are kept (default a checkpoint.Memory);
// s must not be nil.
func WithStore(s checkpoint.Store) Option { return ipoll.WithStore(s) }

// WithSeen sets where handled item IDs are remembered (default a
// dedupe.MemoryStore); s must not be nil.
func WithSeen(s dedupe.Store) Option { return ipoll.WithSeen(s) }

// WithSeenTTL is how long a handled item ID is remembered (default 7 days);
// d must be positive.
func WithSeenTTL(d time.Duration) Option { return ipoll.WithSeenTTL(d) }

// WithLogger sets where the Source reports failed polls and given-up items
// (default slog.Default()); l must not be nil.
func WithLogger(l *slog.Logger) Option { return ipoll.WithLogger(l) }
