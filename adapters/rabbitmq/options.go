package rabbitmq

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
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

// Option configures a Client built with Open or New.
type Option func(*config) error

type config struct {
	logger          *slog.Logger
	maxMessageSize  int
	prefetch        int
	publishChannels int
	streams         bool
	deadLetter      string
	amqpConfig      amqp.Config
	redial          func(ctx context.Context) (*amqp.Connection, error)
	reconnectMin    time.Duration
	reconnectMax    time.Duration
	unavailable     time.Duration // how long Publish waits for a connection
	ackDelay        time.Duration // see acker and WithAckDelay
	management      *management   // nil: no management API (see inspect.go)
}

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
	return c, nil
}

// WithLogger sets where the client reports what it cannot return to a caller:
// reconnects, messages given up after MaxAttempts, acknowledgements that
// failed. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", messaging.ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithMaxMessageSize sets the largest Message.Size Publish accepts (default
// DefaultMaxMessageSize); 0 means no limit other than the broker's.
func WithMaxMessageSize(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: max message size %d: must not be negative", messaging.ErrInvalidOption, n)
		}
		c.maxMessageSize = n
		return nil
	}
}

// WithPrefetch sets the QoS prefetch of subscriptions that do not give the
// Prefetch option (default DefaultPrefetch).
func WithPrefetch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: prefetch %d: must be at least 1", messaging.ErrInvalidOption, n)
		}
		c.prefetch = n
		return nil
	}
}

// WithPublishChannels sets how many confirm-mode channels concurrent Publish
// calls share (default DefaultPublishChannels). One Publish call uses one
// channel, so this bounds the Publish calls in flight at once; more wait.
func WithPublishChannels(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: publish channels %d: must be at least 1", messaging.ErrInvalidOption, n)
		}
		c.publishChannels = n
		return nil
	}
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
// dead-letter into the named exchange (declared as a durable fanout exchange
// if missing): messages given up (a Permanent error, MaxAttempts reached, or
// the queue's delivery limit) are moved there by the broker, with RabbitMQ's
// x-death header recording the reason, count, queue and time. Without it,
// given-up messages are acknowledged and logged.
func WithDeadLetterExchange(name string) Option {
	return func(c *config) error {
		if err := messaging.ValidateName(name); err != nil {
			return fmt.Errorf("dead-letter exchange: %w", err)
		}
		c.deadLetter = name
		return nil
	}
}

// WithAMQPConfig sets the amqp091 configuration Open dials with: TLS, SASL,
// heartbeat, vhost, client properties, a custom Dial function. Open fills in
// Vhost and credentials from the URL when the config leaves them empty.
// Leave Recovery nil: the client reconnects by itself.
func WithAMQPConfig(cfg amqp.Config) Option {
	return func(c *config) error {
		c.amqpConfig = cfg
		return nil
	}
}

// WithTLS sets the TLS configuration used for amqps:// URLs (default: the
// system roots, server name from the URL).
func WithTLS(t *tls.Config) Option {
	return func(c *config) error {
		c.amqpConfig.TLSClientConfig = t
		return nil
	}
}

// WithRedial gives a client built with New a way to open a new connection
// when the given one is lost. Without it such a client cannot reconnect: once
// its connection is lost, Publish fails and subscriptions end with an error.
// Clients built with Open redial their URL.
func WithRedial(dial func(ctx context.Context) (*amqp.Connection, error)) Option {
	return func(c *config) error {
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
// the broker (while the client reconnects) before failing the messages not
// yet confirmed with messaging.ErrUnavailable (default
// messaging.DefaultUnavailableTimeout, 5s; the call's context may end it
// sooner, with an error that wraps ErrUnavailable too).
func WithUnavailableTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: unavailable timeout %v: must be positive", messaging.ErrInvalidOption, d)
		}
		c.unavailable = d
		return nil
	}
}

// WithReconnectBackoff sets the exponential backoff between reconnect
// attempts (default 100ms growing to DefaultReconnectMax, 300ms, with jitter).
// The client retries until it is closed.
func WithReconnectBackoff(initial, maximum time.Duration) Option {
	return func(c *config) error {
		if initial <= 0 || maximum < initial {
			return fmt.Errorf("%w: reconnect backoff %v..%v", messaging.ErrInvalidOption, initial, maximum)
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
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("rabbitmq: WithAckDelay(%v): must be positive: %w", d, messaging.ErrInvalidOption)
		}
		c.ackDelay = d
		return nil
	}
}
