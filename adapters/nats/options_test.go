package nats

import (
	"crypto/tls"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/messaging/driver/urlparam"
	"github.com/msgkit/messaging/internal/mwtest"
)

// unreachable is a URL nobody listens on: every case below must fail before
// Open dials it.
const unreachable = "nats://127.0.0.1:1"

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
		{"WithMode", []Option{WithMode(Mode(-1)), WithMode(Mode(2))}},
		{"WithLogger", []Option{WithLogger(nil)}},
		{"WithPrefetch", []Option{WithPrefetch(0), WithPrefetch(-1)}},
		{"WithMaxInFlight", []Option{WithMaxInFlight(0), WithMaxInFlight(-5)}},
		{"WithMaxAckPending", []Option{WithMaxAckPending(-1)}},
		{"WithPublishTimeout", []Option{WithPublishTimeout(0), WithPublishTimeout(-time.Second)}},
		{"WithRequestTimeout", []Option{WithRequestTimeout(0), WithRequestTimeout(-time.Second)}},
		{"WithUnavailableTimeout", []Option{WithUnavailableTimeout(0), WithUnavailableTimeout(-time.Second)}},
		{"WithStreamPrefix", []Option{WithStreamPrefix("a b"), WithStreamPrefix("a*"), WithStreamPrefix("a>"), WithStreamPrefix(strings.Repeat("p", 300))}},
		{"WithStorage", []Option{WithStorage(jetstream.StorageType(7)), WithStorage(-1)}},
		{"WithReplicas", []Option{WithReplicas(0), WithReplicas(-1), WithReplicas(6)}},
		{"WithMaxAge", []Option{WithMaxAge(-time.Second)}},
		{"WithMaxBytes", []Option{WithMaxBytes(-1)}},
		{"WithRetention", []Option{WithRetention(jetstream.WorkQueuePolicy), WithRetention(jetstream.RetentionPolicy(9))}},
		{"WithDuplicateWindow", []Option{WithDuplicateWindow(-time.Second)}},
		{"WithTLSConfig", []Option{WithTLSConfig(nil)}},
	} {
		for i, o := range tc.invalid {
			_, err := Open(t.Context(), unreachable, o)
			checkInvalid(t, tc.option+" case "+string(rune('0'+i)), err, tc.option)
			// New checks the options the same way, before using the
			// connection.
			_, err = New(&natsgo.Conn{}, o)
			checkInvalid(t, "New with "+tc.option, err, tc.option)
		}
	}
}

// TestOptionsFirstErrorWins: options apply in order and the first error is
// the one returned.
func TestOptionsFirstErrorWins(t *testing.T) {
	_, err := Open(t.Context(), unreachable, WithPrefetch(0), WithReplicas(0))
	checkInvalid(t, "two invalid options", err, "WithPrefetch")
	if strings.Contains(err.Error(), "WithReplicas") {
		t.Errorf("%q names the second invalid option", err)
	}
	// A nil option is ignored (see the package messaging doc), also among
	// WithConnectOptions' nats.go options: the options after it still apply.
	_, err = Open(t.Context(), unreachable, nil, WithConnectOptions(nil, natsgo.Name("x")), WithPrefetch(0))
	checkInvalid(t, "nil option before an invalid one", err, "WithPrefetch")
}

func TestOptionsConflicts(t *testing.T) {
	for _, tc := range []struct {
		opts  []Option
		names []string
	}{
		{[]Option{WithExistingStreams(), WithStreamPrefix("p_")}, []string{"WithExistingStreams", "WithStreamPrefix"}},
		{[]Option{WithReplicas(3), WithExistingStreams()}, []string{"WithExistingStreams", "WithReplicas"}},
		{[]Option{WithExistingStreams(), WithMaxAge(time.Hour)}, []string{"WithExistingStreams", "WithMaxAge"}},
		{[]Option{WithExistingStreams(), WithRetention(jetstream.InterestPolicy)}, []string{"WithExistingStreams", "WithRetention"}},
		{[]Option{WithMode(ModeCore), WithExistingStreams()}, []string{"WithMode", "WithExistingStreams"}},
		{[]Option{WithMode(ModeCore), WithStorage(jetstream.MemoryStorage)}, []string{"WithMode", "WithStorage"}},
		{[]Option{WithMaxAckPending(10), WithMode(ModeCore)}, []string{"WithMode", "WithMaxAckPending"}},
	} {
		_, err := Open(t.Context(), unreachable, tc.opts...)
		checkInvalid(t, strings.Join(tc.names, "+"), err, tc.names...)
	}
	// The URL's options conflict with the caller's the same way.
	_, err := Open(t.Context(), unreachable+"?streams=bind", WithReplicas(3))
	checkInvalid(t, "streams=bind and WithReplicas", err, "WithExistingStreams", "WithReplicas")
}

func TestOptionsValid(t *testing.T) {
	cfg, err := newConfig([]Option{
		WithMode(ModeJetStream), WithLogger(slog.Default()), WithPrefetch(1), WithMaxInFlight(1),
		WithMaxAckPending(0), WithPublishTimeout(time.Second), WithRequestTimeout(time.Second),
		WithUnavailableTimeout(time.Second), WithStreamPrefix(""), WithStreamPrefix("p_"),
		WithStorage(jetstream.MemoryStorage), WithReplicas(5), WithMaxAge(0), WithMaxBytes(0),
		WithRetention(jetstream.InterestPolicy), WithDuplicateWindow(0), WithConnectOptions(),
		WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.streamPrefix != "p_" || cfg.replicas != 5 || cfg.storage != jetstream.MemoryStorage {
		t.Fatalf("options not applied: %+v", cfg)
	}
	if _, err := newConfig([]Option{WithMode(ModeCore), WithExistingStreams()}); err == nil {
		t.Fatal("core mode with WithExistingStreams accepted")
	}
}

func TestURLParamsRejectInvalidValues(t *testing.T) {
	for _, q := range []struct{ query, param string }{
		{"mode=pull", "mode"},
		{"prefetch=0", "prefetch"},
		{"prefetch=many", "prefetch"},
		{"max_in_flight=0", "max_in_flight"},
		{"max_ack_pending=-1", "max_ack_pending"},
		{"publish_timeout=0s", "publish_timeout"},
		{"publish_timeout=soon", "publish_timeout"},
		{"request_timeout=0s", "request_timeout"},
		{"unavailable_timeout=0s", "unavailable_timeout"},
		{"unavailable_timeout=-1s", "unavailable_timeout"},
		{"streams=share", "streams"},
		{"stream_prefix=a*b", "stream_prefix"},
		{"storage=disk", "storage"},
		{"replicas=0", "replicas"},
		{"replicas=7", "replicas"},
		{"max_age=-1h", "max_age"},
		{"max_bytes=-1", "max_bytes"},
		{"max_bytes=lots", "max_bytes"},
		{"retention=workqueue", "retention"},
		{"duplicates=-1m", "duplicates"},
		{"ids=none", "ids"},
		{"connect_timeout=0s", "connect_timeout"},
		{"reconnect_wait=-1s", "reconnect_wait"},
		{"creds=/nonexistent/creds", "creds"},
		{"nkey=/nonexistent/seed", "nkey"},
		{"tls_ca=/nonexistent/ca.pem", "tls_ca"},
		{"tls_cert=/nonexistent/cert.pem", "tls_cert"},
		{"tls_key=/nonexistent/key.pem", "tls_key"},
		{"typo=1", "typo"},
	} {
		_, err := Open(t.Context(), unreachable+"?"+q.query)
		checkInvalid(t, q.query, err, q.param)
	}
}

// TestURLParamsDocumented: doc.go documents exactly the declared URL
// parameters, Open reads each of them and rejects any other, naming it.
func TestURLParamsDocumented(t *testing.T) {
	err := urlparam.CheckDeclared("doc.go", urlParams, func(q string) error {
		u := &url.URL{Scheme: "nats", Host: "127.0.0.1:1", RawQuery: q}
		c, err := openURL(t.Context(), u, []Option{WithConnectOptions(natsgo.Timeout(time.Millisecond))})
		if c != nil {
			_ = c.Close()
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}
