package redis

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/urlparam"
)

// Defaults of the options.
const (
	// DefaultMaxMessageSize is the default limit on Message.Size. Redis
	// accepts far larger values (512 MiB per field), but large stream entries
	// make every read and reclaim slow; raise it deliberately.
	DefaultMaxMessageSize = 1 << 20
	// DefaultBlock is how long one XREADGROUP / XREAD waits for new
	// entries. It also bounds how long a group member takes to reclaim a
	// message another member released or nacked.
	DefaultBlock = time.Second
	// DefaultStaleConsumerAfter is how long a consumer with nothing pending
	// may stay idle before a live member of its group deletes it.
	DefaultStaleConsumerAfter = time.Hour
	// DefaultPrefetch is how many messages a subscription holds (fetched and
	// not yet settled) when the Prefetch subscribe option is not given.
	DefaultPrefetch = 256
)

// Option configures a Client.
type Option func(*config)

type config struct {
	prefix             string
	hashTag            int // -1 auto, 0 off, 1 on
	maxLen             int64
	maxAge             time.Duration
	maxMessageSize     int
	block              time.Duration
	deadLetterSuffix   string
	staleConsumerAfter time.Duration
	logger             *slog.Logger
	closeClient        bool
	coalesce           int
	unavailable        time.Duration // how long Publish retries an unreachable server
}

func newConfig(opts []Option) config {
	c := config{
		hashTag:            -1,
		maxMessageSize:     DefaultMaxMessageSize,
		block:              DefaultBlock,
		staleConsumerAfter: DefaultStaleConsumerAfter,
		logger:             slog.Default(),
		unavailable:        messaging.DefaultUnavailableTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithUnavailableTimeout sets how long Publish keeps retrying (backing off
// from 50ms to 250ms) while the server cannot be reached (refused, reset or
// timed-out connections) before it fails the messages with
// messaging.ErrUnavailable (default messaging.DefaultUnavailableTimeout, 5s;
// the call's context may end it sooner). 0 or less: no retry, fail at once.
// A retried XADD may have been applied before its connection broke: the
// retry can duplicate a message, never lose one.
func WithUnavailableTimeout(d time.Duration) Option { return func(c *config) { c.unavailable = d } }

// WithPrefix puts prefix in front of every stream key: topic "orders" is the
// stream "<prefix>orders" (default: no prefix, so existing streams can be
// consumed by their own names).
func WithPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

// WithHashTag controls whether stream keys are written as "<prefix>{topic}",
// which pins a topic's keys to one Redis Cluster slot. By default it is on
// for a *goredis.ClusterClient (or a URL with cluster=true) and off
// otherwise.
func WithHashTag(on bool) Option {
	return func(c *config) {
		c.hashTag = 0
		if on {
			c.hashTag = 1
		}
	}
}

// WithMaxLen trims every stream to about n entries on each publish (XADD
// MAXLEN ~ n). Trimming ignores consumer groups: entries a group has not read
// yet are dropped too. 0 (the default) keeps everything.
func WithMaxLen(n int64) Option { return func(c *config) { c.maxLen = max(n, 0) } }

// WithMaxAge trims entries older than about d on each publish (XADD MINID ~
// now-d). Like WithMaxLen it ignores consumer groups. 0 (the default) keeps
// everything. WithMaxLen wins when both are set.
func WithMaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = max(d, 0) } }

// WithMaxMessageSize sets the largest Message.Size Publish accepts (default
// DefaultMaxMessageSize); 0 means no limit beyond the server's.
func WithMaxMessageSize(n int) Option { return func(c *config) { c.maxMessageSize = max(n, 0) } }

// WithBlock sets how long one blocking read waits for new entries (default
// DefaultBlock). Shorter makes the hand-over of released and nacked
// messages between group members quicker; longer makes idle subscriptions
// cheaper.
func WithBlock(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.block = d
		}
	}
}

// WithDeadLetter makes a subscription move the messages it gives up on (a
// Permanent error, or MaxAttempts reached) to the topic "<topic><suffix>"
// (for example ".dlq") before acknowledging them, with headers describing
// the failure (see HeaderDeadLetterReason and the others). Empty (the
// default) acknowledges and logs them instead.
func WithDeadLetter(suffix string) Option { return func(c *config) { c.deadLetterSuffix = suffix } }

// WithStaleConsumerAfter sets how long a group consumer with no pending
// messages may stay idle before a live subscription of the same group
// deletes it with XGROUP DELCONSUMER (default DefaultStaleConsumerAfter).
// Deleting such a consumer is always safe: it owns no messages.
func WithStaleConsumerAfter(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.staleConsumerAfter = d
		}
	}
}

// WithLogger sets where the client reports what it cannot return to a caller
// (messages given up, transient Redis errors it retries). Default
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithCoalescing merges concurrent Publish calls into shared pipelines,
// sent by the given number of goroutines (one pipeline on the wire per
// goroutine; calls arriving meanwhile wait and go together in the next). It
// raises throughput when many goroutines publish a few messages each, at the
// cost of a hand-off per call and of serialising callers behind the
// goroutines' round trips; a lone publisher gains nothing, and on a
// low-latency link (loopback, in this package's benchmarks) it was slower
// than sending directly. Measure before enabling. Each call still
// gets its own result, and messages of one call stay in order. 0 (the
// default) sends each call's pipeline directly.
func WithCoalescing(goroutines int) Option {
	return func(c *config) { c.coalesce = max(goroutines, 0) }
}

// WithCloseClient makes Close also close the go-redis client given to New.
// Open sets it: a client Open creates belongs to the messaging Client.
func WithCloseClient(on bool) Option { return func(c *config) { c.closeClient = on } }

// adapterParams are the URL parameters this package reads; every other
// parameter is handed to go-redis (dial_timeout, pool_size, ...), which
// rejects the ones it does not know.
var adapterParams = []string{"prefix", "hash_tag", "maxlen", "max_age", "max_message_size", "block", "dead_letter", "stale_consumer_after", "cluster", "coalesce", "unavailable_timeout"}

// parseURL splits u into this package's options and a go-redis client.
func parseURL(u *url.URL) (goredis.UniversalClient, []Option, error) {
	ours, theirs := *u, *u
	q := u.Query()
	oq, tq := url.Values{}, url.Values{}
	for k, v := range q {
		if isAdapterParam(k) {
			oq[k] = v
		} else {
			tq[k] = v
		}
	}
	ours.RawQuery, theirs.RawQuery = oq.Encode(), tq.Encode()
	p := urlparam.New(&ours)
	var opts []Option
	if p.Has("prefix") {
		opts = append(opts, WithPrefix(p.String("prefix", "")))
	}
	if p.Has("hash_tag") {
		opts = append(opts, WithHashTag(p.Bool("hash_tag", false)))
	}
	opts = append(opts,
		WithMaxLen(int64(p.Int("maxlen", 0))),
		WithMaxAge(p.Duration("max_age", 0)),
		WithMaxMessageSize(p.Size("max_message_size", DefaultMaxMessageSize)),
		WithBlock(p.Duration("block", DefaultBlock)),
		WithDeadLetter(p.String("dead_letter", "")),
		WithStaleConsumerAfter(p.Duration("stale_consumer_after", DefaultStaleConsumerAfter)),
		WithCoalescing(p.Int("coalesce", 0)),
		WithCloseClient(true),
	)
	if p.Has("unavailable_timeout") {
		d := p.Duration("unavailable_timeout", messaging.DefaultUnavailableTimeout)
		if d <= 0 && p.Err() == nil {
			return nil, nil, fmt.Errorf("%w: unavailable_timeout %v: must be positive", messaging.ErrInvalidOption, d)
		}
		opts = append(opts, WithUnavailableTimeout(d))
	}
	cluster := p.Bool("cluster", false)
	if err := p.Err(); err != nil {
		return nil, nil, err
	}
	if theirs.Scheme != "redis" && theirs.Scheme != "rediss" {
		return nil, nil, fmt.Errorf("%w: scheme %q (want redis or rediss)", messaging.ErrInvalidURL, theirs.Scheme)
	}
	// go-redis would read an empty host as localhost.
	if theirs.Hostname() == "" {
		return nil, nil, fmt.Errorf("%w: %s has no host (want redis://host:6379)", messaging.ErrInvalidURL, messaging.RedactURL(u))
	}
	if cluster {
		if theirs.Path != "" && theirs.Path != "/" {
			return nil, nil, fmt.Errorf("%w: a cluster URL takes no database number", messaging.ErrInvalidURL)
		}
		co, err := goredis.ParseClusterURL(theirs.String())
		if err != nil {
			return nil, nil, goRedisURLError(err)
		}
		cc := goredis.NewClusterClient(co)
		cc.AddHook(reloadOnFailure{cc})
		return cc, opts, nil
	}
	o, err := goredis.ParseURL(theirs.String())
	if err != nil {
		return nil, nil, goRedisURLError(err)
	}
	return goredis.NewClient(o), opts, nil
}

func isAdapterParam(name string) bool {
	for _, p := range adapterParams {
		if p == name {
			return true
		}
	}
	return false
}

// goRedisURLError classifies a go-redis URL parsing error: an unknown or bad
// parameter is ErrInvalidOption, anything else ErrInvalidURL.
func goRedisURLError(err error) error {
	msg := err.Error()
	badParam := strings.Contains(msg, "unexpected option") ||
		!strings.Contains(msg, "database") && (strings.Contains(msg, " number: ") || strings.Contains(msg, " duration: ") || strings.Contains(msg, " boolean: "))
	if badParam {
		return fmt.Errorf("%w: %v (parameters of this adapter: %s; others go to go-redis)", messaging.ErrInvalidOption, err, strings.Join(adapterParams, ", "))
	}
	return fmt.Errorf("%w: %v", messaging.ErrInvalidURL, err)
}
