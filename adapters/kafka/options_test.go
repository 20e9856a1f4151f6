package kafka

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"

	"github.com/msgkit/messaging/driver/urlparam"
	"github.com/msgkit/messaging/internal/mwtest"
)

// unreachable is a broker address nobody listens on: every case below must
// fail before the client contacts it.
const unreachable = "127.0.0.1:1"

// checkInvalid is mwtest.WantInvalid without the prefix check: option errors
// and URL parameter errors reach the tests with different prefixes.
func checkInvalid(t *testing.T, what string, err error, names ...string) {
	t.Helper()
	mwtest.WantInvalid(t, "", what, err, names...)
}

func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		option  string
		invalid []Option
	}{
		{"WithDialer", []Option{WithDialer(nil)}},
		{"WithTransport", []Option{WithTransport(nil)}},
		{"WithWriter", []Option{WithWriter(nil), WithWriter(&kafkago.Writer{Topic: "fixed"})}},
		{"WithReaderConfig", []Option{WithReaderConfig(nil), WithReaderConfig(func(rc *kafkago.ReaderConfig) { rc.MinBytes = 1 << 30 })}},
		{"WithTLSConfig", []Option{WithTLSConfig(nil)}},
		{"WithSASL", []Option{WithSASL(nil)}},
		{"WithClientID", []Option{WithClientID("")}},
		{"WithPartitions", []Option{WithPartitions(0), WithPartitions(-1)}},
		{"WithReplicationFactor", []Option{WithReplicationFactor(0), WithReplicationFactor(-2)}},
		{"WithRequiredAcks", []Option{WithRequiredAcks(2), WithRequiredAcks(-2)}},
		{"WithBatchSize", []Option{WithBatchSize(0), WithBatchSize(-1)}},
		{"WithBatchTimeout", []Option{WithBatchTimeout(-time.Millisecond)}},
		{"WithCompression", []Option{WithCompression(5), WithCompression(-1)}},
		{"WithMaxMessageSize", []Option{WithMaxMessageSize(-1)}},
		{"WithCommitInterval", []Option{WithCommitInterval(0), WithCommitInterval(-time.Second)}},
		{"WithUnavailableTimeout", []Option{WithUnavailableTimeout(0), WithUnavailableTimeout(-time.Second)}},
		{"WithSessionTimeout", []Option{WithSessionTimeout(0), WithSessionTimeout(-time.Second)}},
		{"WithHeartbeatInterval", []Option{WithHeartbeatInterval(0), WithHeartbeatInterval(-time.Second)}},
		{"WithRebalanceTimeout", []Option{WithRebalanceTimeout(0), WithRebalanceTimeout(-time.Second)}},
		{"WithJoinBackoff", []Option{WithJoinBackoff(0), WithJoinBackoff(-time.Second)}},
		{"WithMetadataTTL", []Option{WithMetadataTTL(0), WithMetadataTTL(-time.Second)}},
		{"WithLogger", []Option{WithLogger(nil)}},
	} {
		for i, o := range tc.invalid {
			what := fmt.Sprintf("%s case %d", tc.option, i)
			_, err := New([]string{unreachable}, o)
			checkInvalid(t, "New: "+what, err, tc.option)
			_, err = Open(t.Context(), "kafka://"+unreachable, o)
			checkInvalid(t, "Open: "+what, err, tc.option)
		}
	}
}

// TestOptionsFirstErrorWins: options apply in order and the first error is
// the one returned.
func TestOptionsFirstErrorWins(t *testing.T) {
	_, err := New([]string{unreachable}, WithBatchSize(0), WithPartitions(0))
	checkInvalid(t, "two invalid options", err, "WithBatchSize")
	if strings.Contains(err.Error(), "WithPartitions") {
		t.Errorf("%q names the second invalid option", err)
	}
	// A nil option is ignored (see the package messaging doc): the options
	// after it still apply.
	_, err = New([]string{unreachable}, nil, WithBatchSize(0))
	checkInvalid(t, "nil option before an invalid one", err, "WithBatchSize")
}

func TestOptionsConflicts(t *testing.T) {
	w := &kafkago.Writer{Addr: kafkago.TCP(unreachable)}
	for _, tc := range []struct {
		opts  []Option
		names []string
	}{
		{[]Option{WithHeartbeatInterval(10 * time.Second)}, []string{"WithHeartbeatInterval", "WithSessionTimeout"}},
		{[]Option{WithSessionTimeout(time.Second), WithHeartbeatInterval(2 * time.Second)}, []string{"WithHeartbeatInterval", "WithSessionTimeout"}},
		{[]Option{WithWriter(w), WithBatchSize(10)}, []string{"WithWriter", "WithBatchSize"}},
		{[]Option{WithBatchTimeout(time.Millisecond), WithWriter(w)}, []string{"WithWriter", "WithBatchTimeout"}},
		{[]Option{WithWriter(w), WithRequiredAcks(kafkago.RequireOne)}, []string{"WithWriter", "WithRequiredAcks"}},
		{[]Option{WithWriter(w), WithCompression(kafkago.Gzip)}, []string{"WithWriter", "WithCompression"}},
		{[]Option{WithTransport(&kafkago.Transport{}), WithMetadataTTL(time.Minute)}, []string{"WithTransport", "WithMetadataTTL"}},
		{[]Option{WithWriter(&kafkago.Writer{Transport: &kafkago.Transport{}}), WithMetadataTTL(time.Minute)}, []string{"WithWriter", "WithMetadataTTL"}},
	} {
		_, err := New([]string{unreachable}, tc.opts...)
		checkInvalid(t, strings.Join(tc.names, "+"), err, tc.names...)
	}
	// The URL's options conflict with the caller's the same way.
	_, err := Open(t.Context(), "kafka://"+unreachable+"?batch_size=10", WithWriter(w))
	checkInvalid(t, "batch_size= and WithWriter", err, "WithWriter", "WithBatchSize")
}

func TestOptionsValid(t *testing.T) {
	cfg, err := newConfig([]Option{
		WithDialer(&kafkago.Dialer{}), WithReaderConfig(func(*kafkago.ReaderConfig) {}),
		WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}), WithSASL(plain.Mechanism{Username: "u", Password: "p"}),
		WithClientID("me"), WithPartitions(3), WithReplicationFactor(-1), WithReplicationFactor(3),
		WithAutoCreateTopics(false), WithRequiredAcks(kafkago.RequireNone), WithBatchSize(1), WithBatchTimeout(0),
		WithCompression(0), WithCompression(kafkago.Zstd), WithMaxMessageSize(0), WithCommitInterval(time.Second),
		WithUnavailableTimeout(time.Second), WithSessionTimeout(time.Minute), WithHeartbeatInterval(time.Second),
		WithRebalanceTimeout(time.Second), WithJoinBackoff(time.Second), WithMetadataTTL(time.Second),
		WithLogger(slog.Default()),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.clientID != "me" || cfg.partitions != 3 || cfg.replicationFactor != 3 || cfg.compression != kafkago.Zstd || cfg.autoCreate {
		t.Fatalf("options not applied: %+v", cfg)
	}
}

func TestURLParamsRejectInvalidValues(t *testing.T) {
	for _, q := range []struct{ query, param string }{
		{"partitions=0", "partitions"},
		{"partitions=x", "partitions"},
		{"replication=0", "replication"},
		{"replication=-2", "replication"},
		{"auto_create=maybe", "auto_create"},
		{"acks=most", "acks"},
		{"ids=none", "ids"},
		{"batch_size=0", "batch_size"},
		{"batch_timeout=-1ms", "batch_timeout"},
		{"batch_timeout=soon", "batch_timeout"},
		{"compression=brotli", "compression"},
		{"max_message_size=-1", "max_message_size"},
		{"max_message_size=big", "max_message_size"},
		{"commit_interval=0s", "commit_interval"},
		{"session_timeout=0s", "session_timeout"},
		{"heartbeat_interval=0s", "heartbeat_interval"},
		{"rebalance_timeout=0s", "rebalance_timeout"},
		{"join_backoff=0s", "join_backoff"},
		{"metadata_ttl=0s", "metadata_ttl"},
		{"unavailable_timeout=0s", "unavailable_timeout"},
		{"unavailable_timeout=-1s", "unavailable_timeout"},
		{"client_id=", "client_id"},
		{"tls=yes", "tls"},
		{"tls_skip_verify=yes", "tls_skip_verify"},
		{"tls_skip_verify=true", "tls_skip_verify"},
		{"sasl=kerberos", "sasl"},
		{"sasl=plain", "sasl"},
		{"typo=1", "typo"},
	} {
		_, err := Open(t.Context(), "kafka://"+unreachable+"?"+q.query)
		checkInvalid(t, q.query, err, q.param)
	}
}

// TestURLParamsDocumented: doc.go documents exactly the declared URL
// parameters, parseURL reads each of them and rejects any other, naming it.
func TestURLParamsDocumented(t *testing.T) {
	err := urlparam.CheckDeclared("doc.go", urlParams, func(q string) error {
		_, _, err := parseURL(&url.URL{Scheme: "kafka", Host: unreachable, RawQuery: q})
		return err
	})
	if err != nil {
		t.Error(err)
	}
}
