package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/urlparam"
)

// Open returns a client for a kafka:// URL (see the package documentation
// for its parameters) and checks that the cluster answers within ctx. opts
// are applied after the URL's parameters, so they win.
// Errors show no credential of the URL.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	u, err := messaging.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c, err := open(ctx, u, opts)
	if err != nil {
		return nil, messaging.RedactError(err, u)
	}
	return c, nil
}

func open(ctx context.Context, u *url.URL, opts []Option) (*Client, error) {
	brokers, urlOpts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	c, err := New(brokers, append(urlOpts, opts...)...)
	if err != nil {
		return nil, err
	}
	if _, err := c.admin.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("kafka: cluster at %s does not answer: %w", strings.Join(brokers, ","), err)
	}
	return c, nil
}

// parseURL reads kafka://[user:password@]host:port[,host:port...][?params].
func parseURL(u *url.URL) ([]string, []Option, error) {
	if u.Scheme != "kafka" {
		return nil, nil, fmt.Errorf("%w: scheme %q, want kafka", messaging.ErrInvalidURL, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, nil, fmt.Errorf("%w: kafka URL takes no path (%q)", messaging.ErrInvalidURL, u.Path)
	}
	var brokers []string
	for b := range strings.SplitSeq(u.Host, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if !strings.Contains(b, ":") {
				b += ":9092"
			}
			if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
				return nil, nil, fmt.Errorf("%w: kafka broker %q: want host:port", messaging.ErrInvalidURL, b)
			}
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		return nil, nil, fmt.Errorf("%w: kafka URL names no broker (want kafka://host:port[,host:port])", messaging.ErrInvalidURL)
	}

	p := urlparam.New(u)
	var opts []Option
	if p.Has("partitions") {
		opts = append(opts, WithPartitions(p.Int("partitions", DefaultPartitions)))
	}
	if p.Has("replication") {
		opts = append(opts, WithReplicationFactor(p.Int("replication", DefaultReplicationFactor)))
	}
	if p.Has("auto_create") {
		opts = append(opts, WithAutoCreateTopics(p.Bool("auto_create", true)))
	}
	switch p.OneOf("acks", "all", "all", "one", "none") {
	case "one":
		opts = append(opts, WithRequiredAcks(kafkago.RequireOne))
	case "none":
		opts = append(opts, WithRequiredAcks(kafkago.RequireNone))
	}
	if p.Has("batch_size") {
		opts = append(opts, WithBatchSize(p.Int("batch_size", DefaultBatchSize)))
	}
	if p.Has("batch_timeout") {
		opts = append(opts, WithBatchTimeout(p.Duration("batch_timeout", DefaultBatchTimeout)))
	}
	switch p.OneOf("compression", "none", "none", "gzip", "snappy", "lz4", "zstd") {
	case "gzip":
		opts = append(opts, WithCompression(kafkago.Gzip))
	case "snappy":
		opts = append(opts, WithCompression(kafkago.Snappy))
	case "lz4":
		opts = append(opts, WithCompression(kafkago.Lz4))
	case "zstd":
		opts = append(opts, WithCompression(kafkago.Zstd))
	}
	if p.Has("max_message_size") {
		opts = append(opts, WithMaxMessageSize(p.Size("max_message_size", DefaultMaxMessageSize)))
	}
	if p.Has("commit_interval") {
		opts = append(opts, WithCommitInterval(p.Duration("commit_interval", DefaultCommitInterval)))
	}
	if p.Has("session_timeout") {
		opts = append(opts, WithSessionTimeout(p.Duration("session_timeout", DefaultSessionTimeout)))
	}
	if p.Has("heartbeat_interval") {
		opts = append(opts, WithHeartbeatInterval(p.Duration("heartbeat_interval", DefaultHeartbeatInterval)))
	}
	if p.Has("rebalance_timeout") {
		opts = append(opts, WithRebalanceTimeout(p.Duration("rebalance_timeout", DefaultRebalanceTimeout)))
	}
	if p.Has("unavailable_timeout") {
		opts = append(opts, WithUnavailableTimeout(p.Duration("unavailable_timeout", messaging.DefaultUnavailableTimeout)))
	}
	if p.Has("join_backoff") {
		opts = append(opts, WithJoinBackoff(p.Duration("join_backoff", DefaultJoinBackoff)))
	}
	if p.Has("metadata_ttl") {
		opts = append(opts, WithMetadataTTL(p.Duration("metadata_ttl", DefaultMetadataTTL)))
	}
	if p.Has("client_id") {
		opts = append(opts, WithClientID(p.String("client_id", "msgkit")))
	}
	useTLS := p.Bool("tls", false)
	skipVerify := p.Bool("tls_skip_verify", false)
	mech := p.OneOf("sasl", "", "plain", "scram-sha-256", "scram-sha-512")
	if err := p.Err(); err != nil {
		return nil, nil, err
	}
	if skipVerify && !useTLS {
		return nil, nil, fmt.Errorf("%w: tls_skip_verify needs tls=true", messaging.ErrInvalidOption)
	}
	if useTLS {
		opts = append(opts, WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify})) //nolint:gosec // only when asked for
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if mech == "" && user != "" {
		mech = "plain"
	}
	if mech != "" {
		if user == "" {
			return nil, nil, fmt.Errorf("%w: sasl=%s needs user:password@ in the URL", messaging.ErrInvalidOption, mech)
		}
		var m sasl.Mechanism
		switch mech {
		case "plain":
			m = plain.Mechanism{Username: user, Password: pass}
		case "scram-sha-256", "scram-sha-512":
			algo := scram.SHA256
			if mech == "scram-sha-512" {
				algo = scram.SHA512
			}
			var err error
			if m, err = scram.Mechanism(algo, user, pass); err != nil {
				return nil, nil, fmt.Errorf("%w: sasl=%s: cannot prepare credentials", messaging.ErrInvalidOption, mech)
			}
		}
		opts = append(opts, WithSASL(m))
	}
	return brokers, opts, nil
}
