package redis

import (
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver/urlparam"
	"github.com/msgkit/messaging/internal/optcheck"
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

// Option configures a Client. An Option given an invalid value makes New
// and Open fail with an error wrapping messaging.ErrInvalidOption that names
// it.
type Option func(*config) error

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
	callerIDs          bool          // WithCallerIDs: Publish assigns no ID nor Time
}

// newConfig applies opts in order and returns the first error.
func newConfig(opts []Option) (config, error) {
	c := config{
		hashTag:            -1,
		maxMessageSize:     DefaultMaxMessageSize,
		block:              DefaultBlock,
		staleConsumerAfter: DefaultStaleConsumerAfter,
		logger:             slog.Default(),
		unavailable:        messaging.DefaultUnavailableTimeout,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	if c.maxLen > 0 && c.maxAge > 0 {
		return config{}, fmt.Errorf("redis: WithMaxLen(%d) (URL maxlen) and WithMaxAge(%v) (URL max_age) conflict: trim by count or by age, not both: %w", c.maxLen, c.maxAge, messaging.ErrInvalidOption)
	}
	return c, nil
}

// pkg prefixes the errors of invalid options.
const pkg = "redis"

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error { return optcheck.Invalid(pkg, name, v, why) }

// WithUnavailableTimeout sets how long a message given to Publish may wait
// for its acknowledgement while the server cannot be reached (refused,
// reset or timed-out connections), retried with backoff from 50ms to 250ms,
// before it fails with messaging.ErrUnavailable (default
// messaging.DefaultUnavailableTimeout, 5s; the call's context may end it
// sooner). d must be positive. It counts from the start of the Publish call
// (for PublishAsync, from when the message was queued), so the time a
// message waits behind earlier batches or coalesced pipelines counts too: a
// message whose time ran out while it was queued fails without being sent.
// It counts from the client's last acknowledged publish instead when that
// is later (on a cluster, the last to the same stream: another shard's
// answers say nothing of this one's): a server that is slow but answering
// is not unavailable, and the messages queued behind it wait their turn. The deadline bounds the
// retries, the waits for a pipeline and go-redis's own retries, dials,
// reads and writes, so a reply slower than d, or none from a server that
// takes the request and never answers, also fails the message with
// ErrUnavailable. (go-redis applies context deadlines to reads and writes
// on a connection only with its ContextTimeoutEnabled option, which the
// clients Open makes have; without it, on a client given to New, an
// attempt to a server that never answers lasts go-redis's ReadTimeout, 5s
// by default, whatever d or the call's context.)
// A retried XADD may have been applied before its connection broke: the
// retry can duplicate a message, never lose one. Provision, DeleteTopic,
// Inspect, Topics and the setup of Subscribe and Read retry an unreachable
// server the same way for d from the call's start (their context may end
// them sooner, with its error), then fail with ErrUnavailable; the
// ReadTimeout caveat applies to them too.
func WithUnavailableTimeout(d time.Duration) Option {
	return optcheck.Positive(pkg, "WithUnavailableTimeout", d, func(c *config) *time.Duration { return &c.unavailable })
}

// WithPrefix puts prefix in front of every stream key: topic "orders" is the
// stream "<prefix>orders" (default: no prefix, so existing streams can be
// consumed by their own names). Every string is a valid prefix.
func WithPrefix(prefix string) Option {
	return func(c *config) error {
		c.prefix = prefix
		return nil
	}
}

// WithHashTag controls whether stream keys are written as "<prefix>{topic}",
// which pins a topic's keys to one Redis Cluster slot. By default it is on
// for a *goredis.ClusterClient (or a URL with cluster=true) and off
// otherwise.
func WithHashTag(on bool) Option {
	return func(c *config) error {
		c.hashTag = 0
		if on {
			c.hashTag = 1
		}
		return nil
	}
}

// WithMaxLen trims every stream to about n entries on each publish (XADD
// MAXLEN ~ n). Trimming ignores consumer groups: entries a group has not read
// yet are dropped too. 0 (the default) keeps everything; n must not be
// negative. It cannot be combined with WithMaxAge.
func WithMaxLen(n int64) Option {
	return optcheck.NotNegative(pkg, "WithMaxLen", n, func(c *config) *int64 { return &c.maxLen })
}

// WithMaxAge trims entries older than about d on each publish (XADD MINID ~
// now-d). Like WithMaxLen it ignores consumer groups. 0 (the default) keeps
// everything; d must not be negative. It cannot be combined with WithMaxLen.
func WithMaxAge(d time.Duration) Option {
	return optcheck.NotNegative(pkg, "WithMaxAge", d, func(c *config) *time.Duration { return &c.maxAge })
}

// WithMaxMessageSize sets the largest Message.Size Publish accepts (default
// DefaultMaxMessageSize); 0 means no limit beyond the server's; n must not
// be negative.
func WithMaxMessageSize(n int) Option {
	return optcheck.NotNegative(pkg, "WithMaxMessageSize", n, func(c *config) *int { return &c.maxMessageSize })
}

// WithBlock sets how long one blocking read waits for new entries (default
// DefaultBlock; d must be positive). Shorter makes the hand-over of released
// and nacked messages between group members quicker; longer makes idle
// subscriptions cheaper. A group subscription decodes its reads' replies
// itself, which costs less than go-redis's XReadGroup, where the go-redis
// client's ReadTimeout cannot cut a blocked read short: ReadTimeout off,
// or at least 2s longer than the block time (5s and 1s by default), on a
// standalone or failover (Sentinel) client; otherwise (a cluster client
// included) it reads with XReadGroup.
func WithBlock(d time.Duration) Option {
	return optcheck.Positive(pkg, "WithBlock", d, func(c *config) *time.Duration { return &c.block })
}

// WithDeadLetterSuffix makes a subscription move the messages it gives up
// on (a Permanent error, or MaxAttempts reached) to the topic
// "<topic><suffix>" (for example ".dlq") before acknowledging them, with the
// headers of package dlheader describing the failure. Empty (the default)
// acknowledges and logs them instead. topic+suffix must be a valid topic
// name, so suffix may hold only the characters of one ([A-Za-z0-9._-], no
// "..", not ending with '.').
func WithDeadLetterSuffix(suffix string) Option {
	return func(c *config) error {
		if suffix != "" {
			if err := messaging.ValidateName("x" + suffix); err != nil {
				return invalid("WithDeadLetterSuffix", strconv.Quote(suffix), `topic+suffix would not be a valid topic name (allowed: A-Z a-z 0-9 . _ -, no "..", not ending with '.')`)
			}
		}
		c.deadLetterSuffix = suffix
		return nil
	}
}

// WithStaleConsumerAfter sets how long a group consumer with no pending
// messages may stay idle before a live subscription of the same group
// deletes it with XGROUP DELCONSUMER (default DefaultStaleConsumerAfter; d
// must be positive). Deleting such a consumer is always safe: it owns no
// messages.
func WithStaleConsumerAfter(d time.Duration) Option {
	return optcheck.Positive(pkg, "WithStaleConsumerAfter", d, func(c *config) *time.Duration { return &c.staleConsumerAfter })
}

// WithLogger sets where the client reports what it cannot return to a caller
// (messages given up, transient Redis errors it retries). Default
// slog.Default(); nil is invalid.
func WithLogger(l *slog.Logger) Option {
	return optcheck.Required(pkg, "WithLogger", l, "nil logger", func(c *config) **slog.Logger { return &c.logger })
}

// WithCoalescing merges concurrent Publish calls into shared pipelines,
// sent by the given number of goroutines (one pipeline on the wire per
// goroutine; calls arriving meanwhile wait and go together in the next). It
// raises throughput when many goroutines publish a few messages each, at the
// cost of a hand-off per call and of serialising callers behind the
// goroutines' round trips; a lone publisher gains nothing, and on a
// low-latency link (loopback, in this package's benchmarks) it was slower
// than sending directly. Measure before enabling. Each call still
// gets its own result, and messages of one call stay in order. A call's
// unavailable timeout (WithUnavailableTimeout) covers its wait for a
// pipeline, a call whose context ended before a pipeline took it is not
// sent, and a pipeline to a server that cannot be reached ends when no
// call in it waits any more (at their unavailable deadlines or their
// contexts' deadlines, whichever come first, or once their contexts
// ended), so Close waits no longer, and go-redis's own retries of it do
// not send it after its callers were told it failed. 0 (the
// default) sends each call's pipeline directly; negative is invalid.
func WithCoalescing(goroutines int) Option {
	return optcheck.NotNegative(pkg, "WithCoalescing", goroutines, func(c *config) *int { return &c.coalesce })
}

// WithCallerIDs makes Publish and PublishAsync write the ID and Time
// their caller set, and nothing when it set none: no ID nor Time is
// generated, and a message with nothing but a payload is an entry with the
// one field "payload", as a plain XADD writes it.
// Capabilities().PublishAssignsID is then false.
//
// What it changes: a consumer (and Read) gets such a message under its
// stream entry ID ("1700000000000-0", the same on every redelivery, so
// idempotent consumers still work) as ID, and the entry ID's time
// (milliseconds) as Time. Publish's retries after a lost connection may
// add an entry twice either way (Redis does not deduplicate); with
// WithCallerIDs the two copies have different IDs, so a consumer cannot
// tell them apart as duplicates. The default's fields cost consuming about
// a tenth (raw go-redis reading them: 0.90 of payload-only entries) and
// publishing little (PERFORMANCE.md). URL: ids=caller (default ids=assign).
func WithCallerIDs() Option {
	return func(c *config) error {
		c.callerIDs = true
		return nil
	}
}

// WithCloseClient makes Close also close the go-redis client given to New.
// Open sets it: a client Open creates belongs to the messaging Client.
func WithCloseClient(on bool) Option {
	return func(c *config) error {
		c.closeClient = on
		return nil
	}
}

// urlParams declares the URL query parameters this package reads; doc.go
// documents each (TestURLParamsDocumented). Every other parameter is handed
// to go-redis (dial_timeout, pool_size, ...), which rejects the ones it does
// not know.
var urlParams = []urlparam.Param{
	{Name: "prefix", Doc: "stream key prefix (WithPrefix)"},
	{Name: "hash_tag", Doc: "keys as prefix{topic} (WithHashTag)"},
	{Name: "cluster", Doc: "treat the URL as a cluster seed"},
	{Name: "maxlen", Doc: "XADD MAXLEN ~ n on every publish (WithMaxLen)"},
	{Name: "max_age", Doc: "XADD MINID ~ now-age on every publish (WithMaxAge)"},
	{Name: "max_message_size", Doc: "largest Message.Size accepted (WithMaxMessageSize)"},
	{Name: "block", Doc: "XREAD / XREADGROUP block time (WithBlock)"},
	{Name: "dead_letter_suffix", Doc: "dead-letter topic suffix (WithDeadLetterSuffix)"},
	{Name: "stale_consumer_after", Doc: "idle time before deleting a consumer (WithStaleConsumerAfter)"},
	{Name: "coalesce", Doc: "goroutines merging concurrent Publish calls (WithCoalescing)"},
	{Name: "unavailable_timeout", Doc: "Publish's retries of an unreachable server (WithUnavailableTimeout)"},
	{Name: "ids", Doc: "assign or caller: whether Publish gives every message an ID (WithCallerIDs)"},
}

// parseURL splits u into this package's options and a go-redis client.
// The client, standalone or cluster, has go-redis's ContextTimeoutEnabled
// set, so that a call's context deadline (for Publish, also its message's
// unavailable deadline) bounds its reads and writes on the connection:
// without it go-redis ignores the deadline there, and a call to a server
// that takes the request and never answers lasts ReadTimeout (5s by
// default) whatever its deadline. Blocking reads are given no deadline
// (see withoutDeadline): go-redis bounds them by their block time plus 10s.
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
	p := urlparam.NewDeclared(&ours, urlParams)
	opts := []Option{WithCloseClient(true)}
	for _, up := range []struct {
		name string
		opt  func() Option
	}{
		{"prefix", func() Option { return WithPrefix(p.String("prefix", "")) }},
		{"hash_tag", func() Option { return WithHashTag(p.Bool("hash_tag", false)) }},
		{"maxlen", func() Option { return WithMaxLen(int64(p.Int("maxlen", 0))) }},
		{"max_age", func() Option { return WithMaxAge(p.Duration("max_age", 0)) }},
		{"max_message_size", func() Option { return WithMaxMessageSize(p.Size("max_message_size", DefaultMaxMessageSize)) }},
		{"block", func() Option { return WithBlock(p.Duration("block", DefaultBlock)) }},
		{"dead_letter_suffix", func() Option { return WithDeadLetterSuffix(p.String("dead_letter_suffix", "")) }},
		{"stale_consumer_after", func() Option {
			return WithStaleConsumerAfter(p.Duration("stale_consumer_after", DefaultStaleConsumerAfter))
		}},
		{"coalesce", func() Option { return WithCoalescing(p.Int("coalesce", 0)) }},
		{"unavailable_timeout", func() Option {
			return WithUnavailableTimeout(p.Duration("unavailable_timeout", messaging.DefaultUnavailableTimeout))
		}},
	} {
		if p.Has(up.name) {
			opts = append(opts, urlparam.Named(up.name, up.opt()))
		}
	}
	if p.OneOf("ids", "assign", "assign", "caller") == "caller" {
		opts = append(opts, urlparam.Named("ids", WithCallerIDs()))
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
		co.ContextTimeoutEnabled = true // see parseURL; the nodes' clients inherit it
		cc := goredis.NewClusterClient(co)
		cc.AddHook(reloadOnFailure{cc})
		return cc, opts, nil
	}
	o, err := goredis.ParseURL(theirs.String())
	if err != nil {
		return nil, nil, goRedisURLError(err)
	}
	o.ContextTimeoutEnabled = true // see parseURL
	return goredis.NewClient(o), opts, nil
}

func isAdapterParam(name string) bool {
	return slices.ContainsFunc(urlParams, func(p urlparam.Param) bool { return p.Name == name })
}

// goRedisURLError classifies a go-redis URL parsing error: an unknown or bad
// parameter is ErrInvalidOption, anything else ErrInvalidURL.
func goRedisURLError(err error) error {
	msg := err.Error()
	badParam := strings.Contains(msg, "unexpected option") ||
		!strings.Contains(msg, "database") && (strings.Contains(msg, " number: ") || strings.Contains(msg, " duration: ") || strings.Contains(msg, " boolean: "))
	if badParam {
		return fmt.Errorf("%w: %v (parameters of this adapter: %s; others go to go-redis)", messaging.ErrInvalidOption, err, strings.Join(urlparam.Names(urlParams), ", "))
	}
	return fmt.Errorf("%w: %v", messaging.ErrInvalidURL, err)
}
