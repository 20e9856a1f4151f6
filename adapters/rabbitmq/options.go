package rabbitmq

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/optcheck"
)

// Defaults of the client options.
const (
	// DefaultMaxMessageSize is the default limit on Message.Size. RabbitMQ
	// itself accepts up to its max_message_size (128 MiB by default); raise
	// the limit with WithMaxMessageSize when you need more.
	DefaultMaxMessageSize = 4 << 20
	// DefaultPrefetch is the QoS prefetch of a subscription without the
	// Prefetch option.
	DefaultPrefetch = 100
	// DefaultPublishChannels is how many confirm-mode channels concurrent
	// Publish calls share.
	DefaultPublishChannels = 8
)

// Option configures a Client built with Open or New. An Option given an
// invalid value makes Open and New fail with an error wrapping
// messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	logger          *slog.Logger
	maxMessageSize  int
	prefetch        int
	publishChannels int
	streams         bool
	deadLetter      string
	amqpConfig      amqp.Config
	tlsConfig       *tls.Config // WithTLSConfig; nil: amqpConfig's
	redial          func(ctx context.Context) (*amqp.Connection, error)
	guards          func(*amqp.Connection) *frameGuard // Open's: the frameGuard of a connection it dialled (nil: none)
	reconnectMin    time.Duration
	reconnectMax    time.Duration
	unavailable     time.Duration // how long Publish waits for a connection
	ackDelay        time.Duration // see acker and WithAckDelay
	management      *management   // nil: no management API (see inspect.go)
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (config, error) {
	c := config{
		logger:          slog.Default(),
		maxMessageSize:  DefaultMaxMessageSize,
		prefetch:        DefaultPrefetch,
		publishChannels: DefaultPublishChannels,
		reconnectMin:    100 * time.Millisecond,
		reconnectMax:    DefaultReconnectMax,
		unavailable:     messaging.DefaultUnavailableTimeout,
		ackDelay:        ackDelay,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	if c.tlsConfig != nil {
		if c.amqpConfig.TLSClientConfig != nil {
			return config{}, fmt.Errorf("rabbitmq: WithTLSConfig and WithAMQPConfig with a TLSClientConfig conflict: give the TLS configuration once: %w", messaging.ErrInvalidOption)
		}
		c.amqpConfig.TLSClientConfig = c.tlsConfig
	}
	return c, nil
}

// pkg prefixes the errors of invalid options.
const pkg = "rabbitmq"

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error { return optcheck.Invalid(pkg, name, v, why) }

// WithLogger sets where the client reports what it cannot return to a caller:
// reconnects, messages given up after MaxAttempts, acknowledgements that
// failed. Default slog.Default(); nil is invalid.
func WithLogger(l *slog.Logger) Option {
	return optcheck.Required(pkg, "WithLogger", l, "nil logger", func(c *config) **slog.Logger { return &c.logger })
}

// WithMaxMessageSize sets the largest Message.Size Publish accepts (default
// DefaultMaxMessageSize); 0 means no limit other than the broker's; n must
// not be negative.
func WithMaxMessageSize(n int) Option {
	return optcheck.NotNegative(pkg, "WithMaxMessageSize", n, func(c *config) *int { return &c.maxMessageSize })
}

// WithPrefetch sets the QoS prefetch of subscriptions that do not give the
// Prefetch option (default DefaultPrefetch; at least 1, at most 65535).
func WithPrefetch(n int) Option {
	atLeast := optcheck.AtLeast(pkg, "WithPrefetch", n, 1, func(c *config) *int { return &c.prefetch })
	return func(c *config) error {
		if err := checkPrefetch("WithPrefetch", n); err != nil {
			return err
		}
		return atLeast(c)
	}
}

// maxPrefetch is the largest QoS prefetch: AMQP's prefetch-count has 16
// bits (amqp091 would send 65536 as 0, no limit, and 70000 as 4464).
const maxPrefetch = math.MaxUint16

// checkPrefetch rejects a prefetch (of option name) above maxPrefetch.
func checkPrefetch(name string, n int) error {
	if n > maxPrefetch {
		return invalid(name, n, fmt.Sprintf("must be at most %d (AMQP's prefetch-count has 16 bits)", maxPrefetch))
	}
	return nil
}

// WithPublishChannels sets how many confirm-mode channels concurrent Publish
// calls share (default DefaultPublishChannels; at least 1). One Publish call
// uses one channel, so this bounds the Publish calls in flight at once; more
// wait.
func WithPublishChannels(n int) Option {
	return optcheck.AtLeast(pkg, "WithPublishChannels", n, 1, func(c *config) *int { return &c.publishChannels })
}

// WithStreams makes every topic this client declares also get a stream queue
// (x-queue-type=stream) bound to its exchange, which records every message
// published from then on. It enables Stream.Read (and Capabilities().Replay).
// It costs a second durable write per message, so it is off by default.
func WithStreams(on bool) Option {
	return func(c *config) error {
		c.streams = on
		return nil
	}
}

// WithDeadLetterExchange makes the group queues this client declares
// dead-letter into the exchange named name (declared as a durable fanout
// exchange if missing; name must be a valid topic name): messages given up
// (a Permanent error, MaxAttempts reached, or the queue's delivery limit)
// are moved there by the broker, with RabbitMQ's x-death header recording
// the reason, count, queue and time (not the headers of package dlheader).
// A group queue that already existed with other arguments is used as it
// is; when it may not dead-letter into name (made without a dead-letter
// exchange, or with another), the client publishes the messages it gives
// up there itself, with the headers of package dlheader instead of x-death,
// and acknowledges them (see the package documentation). Without the
// option, given-up messages are acknowledged and logged.
func WithDeadLetterExchange(name string) Option {
	return func(c *config) error {
		if err := messaging.ValidateName(name); err != nil {
			return fmt.Errorf("rabbitmq: WithDeadLetterExchange(%q): %w: %w", name, err, messaging.ErrInvalidOption)
		}
		c.deadLetter = name
		return nil
	}
}

// WithAMQPConfig sets the amqp091 configuration Open dials with: SASL,
// heartbeat, vhost, client properties, a custom Dial function, TLS (or give
// TLS with WithTLSConfig, not both). Open fills in Vhost and credentials
// from the URL when the config leaves them empty. Recovery must be nil: the
// client reconnects by itself.
func WithAMQPConfig(cfg amqp.Config) Option {
	return func(c *config) error {
		if cfg.Recovery != nil {
			// The config is not shown: it may hold credentials (SASL).
			return fmt.Errorf("rabbitmq: WithAMQPConfig: Config.Recovery must be nil: the client reconnects by itself: %w", messaging.ErrInvalidOption)
		}
		c.amqpConfig = cfg
		return nil
	}
}

// WithTLSConfig sets the TLS configuration used for amqps:// URLs (default:
// the system roots, server name from the URL); nil is invalid. It cannot be
// combined with a WithAMQPConfig that has a TLSClientConfig.
func WithTLSConfig(t *tls.Config) Option {
	return optcheck.Required(pkg, "WithTLSConfig", t, "nil TLS config", func(c *config) **tls.Config { return &c.tlsConfig })
}

// WithRedial gives a client built with New a way to open a new connection
// when the given one is lost (nil is invalid). Without it such a client
// cannot reconnect: once its connection is lost, Publish fails and
// subscriptions end with an error. Clients built with Open redial their URL.
// As with New, the connections dial returns must not have amqp091's
// experimental Recovery enabled: the client closes such a connection
// unused, logs an error and stops reconnecting, as without WithRedial
// (calls fail with ErrConnectionLost, which also wraps
// messaging.ErrInvalidOption then).
func WithRedial(dial func(ctx context.Context) (*amqp.Connection, error)) Option {
	return func(c *config) error {
		if dial == nil {
			return invalid("WithRedial", "nil", "nil dial function")
		}
		c.redial = dial
		return nil
	}
}

// DefaultReconnectMax caps the backoff between reconnect attempts: with
// the backoff's jitter (±20%) the client tries again at most 360ms after
// the previous attempt, so it notices a broker that is back within about
// that long and publishes again within a second (the AMQP handshake, the
// channel and the topology take the rest). The cost is about three dial
// attempts a second per client during an outage (refused at once while
// the broker is down); raise it (WithReconnectBackoff, reconnect_max) to
// spare a broker that many clients reconnect to.
const DefaultReconnectMax = 300 * time.Millisecond

// WithUnavailableTimeout sets how long Publish waits for a connection to
// the broker (while the client reconnects; counted from the call, a wait
// for a free publish channel included, or from the loss of the connection
// it was sending on) before failing the messages not
// yet confirmed with messaging.ErrUnavailable (default
// messaging.DefaultUnavailableTimeout, 5s; the call's context may end it
// sooner, with an error that wraps ErrUnavailable too), and how long it
// waits on a connection the broker blocked (a resource alarm; see the
// package documentation). The topology and admin calls, a delayed retry
// (RetryAfter) and the re-declaration of the provisioned topology after a
// reconnect are bounded by it too. The topology and admin calls and a
// delayed retry also fail once the broker has sent nothing on the
// connection for that long (counted from the call or the broker's last
// answer, whichever is later; a connection Open dialled, see the package
// documentation), and a redial's handshake is given up then. d must be
// positive.
func WithUnavailableTimeout(d time.Duration) Option {
	return optcheck.Positive(pkg, "WithUnavailableTimeout", d, func(c *config) *time.Duration { return &c.unavailable })
}

// WithReconnectBackoff sets the exponential backoff between reconnect
// attempts (default 100ms growing to DefaultReconnectMax, 300ms, with jitter).
// The client retries until it is closed. initial must be positive and
// maximum at least initial.
func WithReconnectBackoff(initial, maximum time.Duration) Option {
	return func(c *config) error {
		if initial <= 0 {
			return fmt.Errorf("rabbitmq: WithReconnectBackoff(%v, %v): initial must be positive: %w", initial, maximum, messaging.ErrInvalidOption)
		}
		if maximum < initial {
			return fmt.Errorf("rabbitmq: WithReconnectBackoff(%v, %v): maximum below initial: %w", initial, maximum, messaging.ErrInvalidOption)
		}
		c.reconnectMin, c.reconnectMax = initial, maximum
		return nil
	}
}

// WithAckDelay sets how long a successful delivery's acknowledgement may
// wait to share a multiple ack with the next ones (default 5ms). A
// contiguous run of settled deliveries is acknowledged at once when it fills
// half the prefetch window, and every unsent ack goes out on Close or before
// a channel is given up, so the delay costs latency of the ack only: a
// longer one means fewer ack frames under load and, after a crash, more
// redeliveries of messages that were handled. It must be positive.
func WithAckDelay(d time.Duration) Option {
	return optcheck.Positive(pkg, "WithAckDelay", d, func(c *config) *time.Duration { return &c.ackDelay })
}
