package messaging

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
)

// OpenFunc opens a client for a URL whose scheme the adapter registered. It
// must reject unknown query parameters with an error wrapping
// ErrInvalidOption that names the parameter.
type OpenFunc func(ctx context.Context, u *url.URL) (Client, error)

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
// Errors wrap ErrInvalidURL, ErrUnknownScheme or ErrInvalidOption, name the
// bad part, and never show the URL's password.
func Open(ctx context.Context, rawURL string) (Client, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q in %s: %s", ErrUnknownScheme, u.Scheme, u.Redacted(), unknownSchemeHint(u.Scheme))
	}
	c, err := open(ctx, u)
	if err != nil {
		return nil, redact(fmt.Errorf("messaging: open %s: %w", u.Redacted(), err), u)
	}
	return c, nil
}

// ParseURL parses a broker URL and checks that it has a scheme. Its errors
// wrap ErrInvalidURL and do not show the password.
func ParseURL(rawURL string) (*url.URL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: empty URL", ErrInvalidURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole input, password included: say less.
		var ue *url.Error
		msg := err.Error()
		if e, ok := err.(*url.Error); ok {
			ue = e
			msg = ue.Err.Error()
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalidURL, redactString(msg, rawURL))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: %s has no scheme (want e.g. nats://, redis://, kafka://, amqp://, mem://)", ErrInvalidURL, u.Redacted())
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

// OpenConfig opens a client from cfg, as Open does with cfg.URL plus Params.
func OpenConfig(ctx context.Context, cfg Config) (Client, error) {
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
	return Open(ctx, u.String())
}

// redactedError hides a URL's password in an error text while keeping the
// error chain for errors.Is and errors.As.
type redactedError struct {
	err      error
	password string
}

func (e *redactedError) Error() string { return redactPassword(e.err.Error(), e.password) }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, u *url.URL) error {
	if u.User == nil {
		return err
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return &redactedError{err: err, password: p}
	}
	return err
}

func redactPassword(s, password string) string {
	s = strings.ReplaceAll(s, password, "xxxxx")
	return strings.ReplaceAll(s, url.QueryEscape(password), "xxxxx")
}

// redactString removes the password of a URL that failed to parse from s.
func redactString(s, rawURL string) string {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return s
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok {
		return s
	}
	if _, password, ok := strings.Cut(userinfo, ":"); ok && password != "" {
		return redactPassword(s, password)
	}
	return s
}
