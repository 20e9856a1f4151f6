package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver/urlparam"
)

// urlParams declares the URL query parameters Open reads; doc.go documents
// each (TestURLParamsDocumented), and any other is rejected.
var urlParams = []urlparam.Param{
	{Name: "partitions", Doc: "partitions of created topics (WithPartitions)"},
	{Name: "replication", Doc: "replication factor of created topics (WithReplicationFactor)"},
	{Name: "auto_create", Doc: "create missing topics (WithAutoCreateTopics)"},
	{Name: "acks", Doc: "all, one or none (WithRequiredAcks)"},
	{Name: "batch_size", Doc: "records per produce request and partition (WithBatchSize)"},
	{Name: "batch_timeout", Doc: "linger before a request that is not full (WithBatchTimeout)"},
	{Name: "compression", Doc: "none, gzip, snappy, lz4 or zstd (WithCompression)"},
	{Name: "max_message_size", Doc: "largest Message.Size Publish accepts (WithMaxMessageSize)"},
	{Name: "ids", Doc: "assign or caller: whether Publish gives every message an ID (WithCallerIDs)"},
	{Name: "commit_interval", Doc: "how often group offsets are committed (WithCommitInterval)"},
	{Name: "session_timeout", Doc: "consumer-group session timeout (WithSessionTimeout)"},
	{Name: "heartbeat_interval", Doc: "group heartbeat interval (WithHeartbeatInterval)"},
	{Name: "rebalance_timeout", Doc: "wait for members to rejoin (WithRebalanceTimeout)"},
	{Name: "join_backoff", Doc: "pause before rejoining a group (WithJoinBackoff)"},
	{Name: "metadata_ttl", Doc: "lifetime of cluster metadata (WithMetadataTTL)"},
	{Name: "unavailable_timeout", Doc: "Publish's retries of an unreachable broker (WithUnavailableTimeout)"},
	{Name: "client_id", Doc: "client ID sent to the brokers (WithClientID)"},
	{Name: "tls", Doc: "connect with TLS (WithTLSConfig)"},
	{Name: "tls_skip_verify", Doc: "do not verify the server certificate"},
	{Name: "sasl", Doc: "plain, scram-sha-256 or scram-sha-512 (WithSASL)"},
}

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

	p := urlparam.NewDeclared(u, urlParams)
	// The URL's options come first, each naming its parameter in its error.
	var opts []Option
	add := func(name string, o Option) { opts = append(opts, urlparam.Named(name, o)) }
	for _, ip := range []struct {
		name string
		with func(int) Option
	}{{"partitions", WithPartitions}, {"replication", WithReplicationFactor}, {"batch_size", WithBatchSize}} {
		if p.Has(ip.name) {
			add(ip.name, ip.with(p.Int(ip.name, 0)))
		}
	}
	if p.Has("auto_create") {
		add("auto_create", WithAutoCreateTopics(p.Bool("auto_create", true)))
	}
	if p.Has("acks") {
		acks := map[string]kafkago.RequiredAcks{"all": kafkago.RequireAll, "one": kafkago.RequireOne, "none": kafkago.RequireNone}
		add("acks", WithRequiredAcks(acks[p.OneOf("acks", "all", "all", "one", "none")]))
	}
	if p.Has("compression") {
		codecs := map[string]kafkago.Compression{"none": 0, "gzip": kafkago.Gzip, "snappy": kafkago.Snappy, "lz4": kafkago.Lz4, "zstd": kafkago.Zstd}
		add("compression", WithCompression(codecs[p.OneOf("compression", "none", "none", "gzip", "snappy", "lz4", "zstd")]))
	}
	if p.OneOf("ids", "assign", "assign", "caller") == "caller" {
		add("ids", WithCallerIDs())
	}
	if p.Has("max_message_size") {
		add("max_message_size", WithMaxMessageSize(p.Size("max_message_size", DefaultMaxMessageSize)))
	}
	for _, dp := range []struct {
		name string
		with func(time.Duration) Option
	}{
		{"batch_timeout", WithBatchTimeout}, {"commit_interval", WithCommitInterval}, {"session_timeout", WithSessionTimeout},
		{"heartbeat_interval", WithHeartbeatInterval}, {"rebalance_timeout", WithRebalanceTimeout},
		{"unavailable_timeout", WithUnavailableTimeout}, {"join_backoff", WithJoinBackoff}, {"metadata_ttl", WithMetadataTTL},
	} {
		if p.Has(dp.name) {
			add(dp.name, dp.with(p.Duration(dp.name, 0)))
		}
	}
	if p.Has("client_id") {
		add("client_id", WithClientID(p.String("client_id", "")))
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
		add("tls", WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify})) //nolint:gosec // only when asked for
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
		add("sasl", WithSASL(m))
	}
	return brokers, opts, nil
}
