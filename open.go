package messaging

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// OpenFunc opens a client for a URL whose scheme the adapter registered,
// with the settings Open's options gave (see OpenSettings). It must reject
// unknown query parameters with an error wrapping ErrInvalidOption that
// names the parameter.
type OpenFunc func(ctx context.Context, u *url.URL, s OpenSettings) (Client, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes an adapter available to Open under a URL scheme. Adapters
// call it from init; it panics if open is nil or the scheme is taken, as
// database/sql.Register does.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	scheme = strings.ToLower(scheme)
	if open == nil {
		panic("messaging: Register of a nil OpenFunc for scheme " + scheme)
	}
	if _, dup := registry[scheme]; dup {
		panic("messaging: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// Open returns a client for rawURL, chosen by its scheme among the registered
// adapters (import an adapter package for its side effect to register it;
// for a scheme of an adapter this module ships, the error names the package
// to import).
// opts (WithLogger) apply to whichever adapter the scheme picks; they are
// applied in order and the first error is returned.
// Errors wrap ErrInvalidURL, ErrUnknownScheme or ErrInvalidOption, name the
// bad part, and never show the URL's password.
func Open(ctx context.Context, rawURL string, opts ...OpenOption) (Client, error) {
	s, err := openSettings(opts)
	if err != nil {
		return nil, err
	}
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, RedactError(fmt.Errorf("%w %q in %s: %s", ErrUnknownScheme, u.Scheme, RedactURL(u), unknownSchemeHint(u.Scheme)), u)
	}
	c, err := open(ctx, u, s)
	if err != nil {
		return nil, RedactError(fmt.Errorf("messaging: open %s: %w", RedactURL(u), err), u)
	}
	return c, nil
}

// ParseURL parses a broker URL and checks that it has a scheme and a well
// formed query: a malformed escape anywhere ("?%zz", "size=1%") is an error,
// where url.URL.Query would silently drop the parameter; and so is a '#'
// anywhere (a broker URL has no fragment: it is a credential's '#' left
// unescaped). Its errors wrap ErrInvalidURL and show no credential (see
// RedactURL): one for a URL that does not parse says what is wrong
// without quoting any of it.
func ParseURL(rawURL string) (*url.URL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: empty URL", ErrInvalidURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidURL, parseProblem(err, rawURL))
	}
	if strings.Contains(rawURL, "#") {
		// A broker URL has no fragment: this is a credential's '#' left
		// unescaped, and what follows it would be taken for the fragment
		// (a token before it for the host), so the URL is not shown.
		return nil, fmt.Errorf("%w: '#' in a broker URL (percent-encode it as %%23 in a user, password or token)", ErrInvalidURL)
	}
	if u.Scheme == "" || u.Opaque != "" {
		// Not shown: without "scheme://" nothing marks where a password
		// begins ("guest:s3cret@host:5672" parses as scheme "guest").
		return nil, fmt.Errorf("%w: no scheme:// at the start (want e.g. nats://, redis://, kafka://, amqp://, mem://)", ErrInvalidURL)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return nil, RedactError(fmt.Errorf("%w: %s: query: %s", ErrInvalidURL, RedactURL(u), queryProblem(u.RawQuery)), u)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

// Config is the plain-data form of Open's argument, for applications that
// read their broker choice from the environment or a file. Params are merged
// into the URL's query (a Params entry wins over the same URL parameter);
// they are the adapter's documented URL parameters.
type Config struct {
	URL    string            `json:"url" yaml:"url"`
	Params map[string]string `json:"params,omitempty" yaml:"params,omitempty"`
}

// ConfigFromEnv returns a Config from MESSAGING_URL, with every variable
// MESSAGING_PARAM_<NAME> as parameter <name> (lower case).
func ConfigFromEnv() Config {
	cfg := Config{URL: os.Getenv("MESSAGING_URL")}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if p, ok := strings.CutPrefix(name, "MESSAGING_PARAM_"); ok && p != "" {
			if cfg.Params == nil {
				cfg.Params = map[string]string{}
			}
			cfg.Params[strings.ToLower(p)] = value
		}
	}
	return cfg
}

// OpenConfig opens a client from cfg, as Open does with cfg.URL plus Params
// and opts.
func OpenConfig(ctx context.Context, cfg Config, opts ...OpenOption) (Client, error) {
	u, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if len(cfg.Params) > 0 {
		q := u.Query()
		for k, v := range cfg.Params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	return Open(ctx, u.String(), opts...)
}

// queryProblem says what url.ParseQuery rejects in rawQuery, naming the
// parameter but quoting nothing of a value: url.ParseQuery's error quotes
// the malformed escape (`invalid URL escape "%zz"`), which can be part of
// a password or token. Nor is a name quoted that does not unescape: it can
// be a credential whose '&' was left unescaped.
func queryProblem(rawQuery string) string {
	for kv := range strings.SplitSeq(rawQuery, "&") {
		if strings.Contains(kv, ";") {
			return "';' between parameters (separate them with '&'; percent-encode a ';' in a value as %3B)"
		}
		k, v, _ := strings.Cut(kv, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return "a parameter name with a malformed percent-escape (percent-encode '%' as %25)"
		}
		if _, err := url.QueryUnescape(v); err != nil {
			return fmt.Sprintf("parameter %q: its value has a malformed percent-escape (percent-encode '%%' as %%25)", name)
		}
	}
	return "malformed"
}

// parseProblem says what url.Parse found wrong with rawURL without quoting
// any of it: url.Error quotes the input, and its inner errors quote the part
// around the fault, which can be part of a password whose '/', '?' or '#'
// was left unescaped (`invalid port ":s3cr" after host`).
func parseProblem(err error, rawURL string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var b strings.Builder
	rest := err.Error()
	for {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		// A quoted part ends at its closing quote, not at an escaped one
		// (strconv.Quote writes '"' as \"); one that does not end drops
		// the rest.
		q, err := strconv.QuotedPrefix(rest[i:])
		if err != nil {
			break
		}
		rest = rest[i+len(q):]
	}
	msg := strings.Join(strings.Fields(b.String()), " ")
	if strings.Contains(rawURL, "@") {
		msg += " (percent-encode '/', '?', '#', '@' and ':' in a user, password or token)"
	}
	return msg
}
