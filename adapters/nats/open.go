package nats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver/urlparam"
)

// urlParams declares the URL query parameters Open reads; doc.go documents
// each (TestURLParamsDocumented), and any other is rejected.
var urlParams = []urlparam.Param{
	{Name: "mode", Doc: "jetstream or core (WithMode)"},
	{Name: "name", Doc: "connection name shown by the server"},
	{Name: "token", Doc: "token authentication"},
	{Name: "creds", Doc: "user JWT and nkey credentials file"},
	{Name: "nkey", Doc: "nkey seed file"},
	{Name: "tls_ca", Doc: "CA certificates file"},
	{Name: "tls_cert", Doc: "client certificate file (with tls_key)"},
	{Name: "tls_key", Doc: "client key file (with tls_cert)"},
	{Name: "connect_timeout", Doc: "bound of the first connection"},
	{Name: "reconnect_wait", Doc: "pause before reconnecting to a server"},
	{Name: "prefetch", Doc: "messages pulled ahead per subscription (WithPrefetch)"},
	{Name: "max_in_flight", Doc: "unacknowledged JetStream publishes (WithMaxInFlight)"},
	{Name: "max_ack_pending", Doc: "MaxAckPending of created consumers (WithMaxAckPending)"},
	{Name: "publish_timeout", Doc: "wait for one publish acknowledgement (WithPublishTimeout)"},
	{Name: "request_timeout", Doc: "Request without a context deadline (WithRequestTimeout)"},
	{Name: "unavailable_timeout", Doc: "Publish's wait for a lost connection or a silent server (WithUnavailableTimeout)"},
	{Name: "streams", Doc: "create or bind (WithExistingStreams)"},
	{Name: "stream_prefix", Doc: "prefix of created stream names (WithStreamPrefix)"},
	{Name: "storage", Doc: "file or memory storage of created streams (WithStorage)"},
	{Name: "replicas", Doc: "replicas of created streams (WithReplicas)"},
	{Name: "max_age", Doc: "age limit of created streams (WithMaxAge)"},
	{Name: "max_bytes", Doc: "size limit of created streams (WithMaxBytes)"},
	{Name: "retention", Doc: "limits or interest retention of created streams (WithRetention)"},
	{Name: "duplicates", Doc: "duplicate window of created streams (WithDuplicateWindow)"},
	{Name: "ids", Doc: "assign or caller: whether Publish gives every message an ID (WithCallerIDs)"},
}

func init() {
	messaging.Register("nats", open)
	messaging.Register("tls", open)
}

func open(ctx context.Context, u *url.URL, s messaging.OpenSettings) (messaging.Client, error) {
	var opts []Option
	if s.Logger != nil {
		opts = append(opts, WithLogger(s.Logger))
	}
	return openURL(ctx, u, opts)
}

// DefaultReconnectWait is the pause between reconnection attempts to a
// server (URL: reconnect_wait). It is short so that a client is back within
// about a quarter second of a server that returns (nats.go's own default,
// 2s, kept clients away for up to 2s after a restart). nats.go adds up to
// 100ms of jitter; a fleet of thousands of clients may prefer a longer
// wait, which spreads their reconnects over more time.
const DefaultReconnectWait = 250 * time.Millisecond

// Open connects to the server of rawURL (see the package documentation for
// the URL format and parameters) and returns a Client that owns the
// connection: Close closes it. opts apply after the URL's parameters. The
// connection reconnects forever (natsgo.MaxReconnects(-1)); Open itself
// fails when the first connection cannot be made before ctx ends or the
// connect timeout passes. Errors wrap ErrInvalidURL or ErrInvalidOption for
// bad input and never show the password.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	u, err := messaging.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return openURL(ctx, u, opts)
}

// openURL opens a client for u; its errors show no credential of u.
func openURL(ctx context.Context, u *url.URL, opts []Option) (*Client, error) {
	c, err := connectURL(ctx, u, opts)
	if err != nil {
		return nil, messaging.RedactError(err, u)
	}
	return c, nil
}

func connectURL(ctx context.Context, u *url.URL, opts []Option) (*Client, error) {
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return nil, fmt.Errorf("%w: scheme %q: want nats:// or tls://", messaging.ErrInvalidURL, u.Scheme)
	}
	hosts := strings.Split(u.Host, ",")
	for _, h := range hosts {
		if strings.TrimSpace(h) == "" || strings.HasPrefix(h, ":") {
			return nil, fmt.Errorf("%w: %s has an empty host (want nats://host:4222 or nats://host1:4222,host2:4222)", messaging.ErrInvalidURL, messaging.RedactURL(u))
		}
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: NATS URLs take no path (%q)", messaging.ErrInvalidURL, u.Path)
	}
	p := urlparam.NewDeclared(u, urlParams)
	// The URL's options come first, each naming its parameter in its error.
	var urlOpts []Option
	add := func(name string, o Option) { urlOpts = append(urlOpts, urlparam.Named(name, o)) }
	if p.Has("mode") {
		mode := ModeJetStream
		if p.OneOf("mode", "jetstream", "jetstream", "core") == "core" {
			mode = ModeCore
		}
		add("mode", WithMode(mode))
	}
	for _, ip := range []struct {
		name string
		with func(int) Option
	}{{"prefetch", WithPrefetch}, {"max_in_flight", WithMaxInFlight}, {"max_ack_pending", WithMaxAckPending}, {"replicas", WithReplicas}} {
		if p.Has(ip.name) {
			add(ip.name, ip.with(p.Int(ip.name, 0)))
		}
	}
	for _, dp := range []struct {
		name string
		with func(time.Duration) Option
	}{{"publish_timeout", WithPublishTimeout}, {"request_timeout", WithRequestTimeout}, {"unavailable_timeout", WithUnavailableTimeout}, {"max_age", WithMaxAge}, {"duplicates", WithDuplicateWindow}} {
		if p.Has(dp.name) {
			add(dp.name, dp.with(p.Duration(dp.name, 0)))
		}
	}
	if p.OneOf("streams", "create", "create", "bind") == "bind" {
		add("streams", WithExistingStreams())
	}
	if p.OneOf("ids", "assign", "assign", "caller") == "caller" {
		add("ids", WithCallerIDs())
	}
	if p.Has("stream_prefix") {
		add("stream_prefix", WithStreamPrefix(p.String("stream_prefix", "")))
	}
	if p.Has("storage") {
		storage := jetstream.FileStorage
		if p.OneOf("storage", "file", "file", "memory") == "memory" {
			storage = jetstream.MemoryStorage
		}
		add("storage", WithStorage(storage))
	}
	if p.Has("max_bytes") {
		add("max_bytes", WithMaxBytes(int64(p.Size("max_bytes", 0))))
	}
	if p.Has("retention") {
		retention := jetstream.LimitsPolicy
		if p.OneOf("retention", "limits", "limits", "interest") == "interest" {
			retention = jetstream.InterestPolicy
		}
		add("retention", WithRetention(retention))
	}

	connectTimeout := p.Duration("connect_timeout", 5*time.Second)
	if connectTimeout == 0 {
		p.Invalid("connect_timeout", "0", "must be positive")
	}
	connOpts := []natsgo.Option{
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(p.Duration("reconnect_wait", DefaultReconnectWait)),
		natsgo.Timeout(connectTimeout),
	}
	if name := p.String("name", ""); name != "" {
		connOpts = append(connOpts, natsgo.Name(name))
	}
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			connOpts = append(connOpts, natsgo.UserInfo(u.User.Username(), pass))
		} else if tok := u.User.Username(); tok != "" {
			connOpts = append(connOpts, natsgo.Token(tok))
		}
	}
	if tok := p.String("token", ""); tok != "" {
		connOpts = append(connOpts, natsgo.Token(tok))
	}
	creds, seed := p.String("creds", ""), p.String("nkey", "")
	ca, cert, key := p.String("tls_ca", ""), p.String("tls_cert", ""), p.String("tls_key", "")
	if err := p.Err(); err != nil {
		return nil, err
	}
	cfg, err := newConfig(append(urlOpts, opts...))
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ param, path string }{{"creds", creds}, {"nkey", seed}, {"tls_ca", ca}, {"tls_cert", cert}, {"tls_key", key}} {
		if err := checkFile(f.param, f.path); err != nil {
			return nil, err
		}
	}
	if creds != "" {
		connOpts = append(connOpts, natsgo.UserCredentials(creds))
	}
	if seed != "" {
		o, err := natsgo.NkeyOptionFromSeed(seed)
		if err != nil {
			return nil, fmt.Errorf("%w: URL parameter nkey: not an nkey seed file", messaging.ErrInvalidOption)
		}
		connOpts = append(connOpts, o)
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("%w: tls_cert and tls_key go together", messaging.ErrInvalidOption)
	}
	if ca != "" {
		connOpts = append(connOpts, natsgo.RootCAs(ca))
	}
	if cert != "" {
		connOpts = append(connOpts, natsgo.ClientCert(cert, key))
	}
	switch {
	case cfg.tlsConf != nil:
		connOpts = append(connOpts, natsgo.Secure(cfg.tlsConf))
	case u.Scheme == "tls":
		connOpts = append(connOpts, natsgo.Secure())
	}
	log := cfg.logger
	connOpts = append(connOpts,
		natsgo.ErrorHandler(func(_ *natsgo.Conn, s *natsgo.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("nats: asynchronous error", "subject", subj, "error", err)
		}),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				log.Warn("nats: disconnected; reconnecting", "error", err)
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) { log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted()) }),
	)
	connOpts = append(connOpts, cfg.connOpts...)

	// The server addresses without credentials or parameters: nats.go gets
	// those as options, so its errors cannot show them. A multi-host URL
	// becomes nats.go's comma-separated server list.
	servers := make([]string, len(hosts))
	for i, h := range hosts {
		servers[i] = (&url.URL{Scheme: u.Scheme, Host: strings.TrimSpace(h)}).String()
	}
	server := strings.Join(servers, ",")
	type result struct {
		nc  *natsgo.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := natsgo.Connect(server, connOpts...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		go func() { // close the connection should it still succeed
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("nats: connect to %s: %w", server, ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w", server, r.err)
	}
	c, err := newClient(r.nc, true, cfg)
	if err != nil {
		r.nc.Close()
		return nil, err
	}
	return c, nil
}

// checkFile reports an unreadable file named by a URL parameter without
// showing the path: a seed or a token pasted where a path belongs would
// otherwise appear in the error (nats.go quotes the path).
func checkFile(param, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%w: URL parameter %s: cannot read the file: %w", messaging.ErrInvalidOption, param, err)
	}
	return f.Close()
}
