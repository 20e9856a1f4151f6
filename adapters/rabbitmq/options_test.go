package rabbitmq_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/internal/mwtest"
)

// nowhere is an AMQP URL nothing listens on: Open fails with ErrInvalidOption
// only if it rejects the options before dialing.
const nowhere = "amqp://guest:guest@127.0.0.1:1/"

// wantInvalid is mwtest.WantInvalid without the prefix check: option errors
// and URL parameter errors reach the tests with different prefixes.
func wantInvalid(t *testing.T, what string, err error, names ...string) {
	t.Helper()
	mwtest.WantInvalid(t, "", what, err, names...)
}

// openNowhere opens nowhere with a short deadline, in case the options are
// wrongly accepted.
func openNowhere(t *testing.T, opts ...rabbitmq.Option) (*rabbitmq.Client, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return rabbitmq.Open(ctx, nowhere, opts...)
}

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// Open fail with ErrInvalidOption naming the option, before it dials.
func TestOptionsRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []rabbitmq.Option
	}{
		{"WithLogger", []rabbitmq.Option{rabbitmq.WithLogger(nil)}},
		{"WithMaxMessageSize", []rabbitmq.Option{rabbitmq.WithMaxMessageSize(-1)}},
		{"WithPrefetch", []rabbitmq.Option{rabbitmq.WithPrefetch(0), rabbitmq.WithPrefetch(-1)}},
		{"WithPublishChannels", []rabbitmq.Option{rabbitmq.WithPublishChannels(0), rabbitmq.WithPublishChannels(-1)}},
		{"WithDeadLetterExchange", []rabbitmq.Option{
			rabbitmq.WithDeadLetterExchange(""), rabbitmq.WithDeadLetterExchange("bad name"), rabbitmq.WithDeadLetterExchange("a..b"),
		}},
		{"WithAMQPConfig", []rabbitmq.Option{rabbitmq.WithAMQPConfig(amqp.Config{Recovery: &amqp.Recovery{}})}},
		{"WithTLSConfig", []rabbitmq.Option{rabbitmq.WithTLSConfig(nil)}},
		{"WithRedial", []rabbitmq.Option{rabbitmq.WithRedial(nil)}},
		{"WithUnavailableTimeout", []rabbitmq.Option{rabbitmq.WithUnavailableTimeout(0), rabbitmq.WithUnavailableTimeout(-time.Second)}},
		{"WithReconnectBackoff", []rabbitmq.Option{
			rabbitmq.WithReconnectBackoff(0, time.Second), rabbitmq.WithReconnectBackoff(-time.Second, time.Second),
			rabbitmq.WithReconnectBackoff(time.Second, time.Millisecond),
		}},
		{"WithAckDelay", []rabbitmq.Option{rabbitmq.WithAckDelay(0), rabbitmq.WithAckDelay(-time.Millisecond)}},
		{"WithManagement", []rabbitmq.Option{
			rabbitmq.WithManagement(""), rabbitmq.WithManagement("ftp://host:15672"), rabbitmq.WithManagement("http://"),
		}},
	} {
		for i, o := range tc.bad {
			c, err := openNowhere(t, o)
			if c != nil {
				_ = c.Close()
				t.Errorf("%s #%d: Open returned a client", tc.name, i)
			}
			wantInvalid(t, tc.name, err, tc.name)
		}
	}
}

// TestOptionsConflictAndFirstError: WithTLSConfig with a WithAMQPConfig
// that has its own TLS configuration is rejected naming both; the first
// invalid option's error is returned as is; New rejects a nil connection.
func TestOptionsConflictAndFirstError(t *testing.T) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, opts := range [][]rabbitmq.Option{
		{rabbitmq.WithTLSConfig(conf), rabbitmq.WithAMQPConfig(amqp.Config{TLSClientConfig: conf})},
		{rabbitmq.WithAMQPConfig(amqp.Config{TLSClientConfig: conf}), rabbitmq.WithTLSConfig(conf)},
	} {
		_, err := openNowhere(t, opts...)
		wantInvalid(t, "WithTLSConfig with WithAMQPConfig's TLS", err, "WithTLSConfig", "WithAMQPConfig")
	}
	_, err := openNowhere(t, rabbitmq.WithPrefetch(0), rabbitmq.WithLogger(nil))
	wantInvalid(t, "two invalid options", err, "WithPrefetch")
	if strings.Contains(err.Error(), "WithLogger") {
		t.Errorf("two invalid options: %q, want the first one's error only", err)
	}
	if _, err := rabbitmq.New(nil, rabbitmq.WithLogger(slog.Default())); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("New(nil): %v, want ErrInvalidOption", err)
	}
}

// TestURLParametersRejectInvalidValues: Open fails on an invalid parameter
// value with ErrInvalidOption naming the parameter, before it dials.
func TestURLParametersRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct{ query, param string }{
		{"max_message_size=-1", "max_message_size"},
		{"prefetch=0", "prefetch"},
		{"prefetch=x", "prefetch"},
		{"publish_channels=0", "publish_channels"},
		{"streams=maybe", "streams"},
		{"dead_letter_exchange=a..b", "dead_letter_exchange"},
		{"reconnect_min=0s", "reconnect_min"},
		{"reconnect_min=2s&reconnect_max=1s", "reconnect_max"},
		{"unavailable_timeout=0s", "unavailable_timeout"},
		{"management=ftp://x", "management"},
		{"heartbeat=-1s", "heartbeat"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := rabbitmq.Open(ctx, nowhere+"?"+tc.query)
		cancel()
		wantInvalid(t, tc.query, err, tc.param)
	}
}

// TestPrefetchAboveAMQPLimit: a prefetch above 65535, which AMQP's 16-bit
// prefetch-count cannot carry (amqp091 sent 65536 as 0, no limit), is
// rejected naming the limit, as an option and as a URL parameter; 65535 is
// accepted.
func TestPrefetchAboveAMQPLimit(t *testing.T) {
	for _, n := range []int{65536, 70000} {
		_, err := openNowhere(t, rabbitmq.WithPrefetch(n))
		wantInvalid(t, fmt.Sprintf("WithPrefetch(%d)", n), err, "WithPrefetch", "65535")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := rabbitmq.Open(ctx, nowhere+"?prefetch=65536")
	wantInvalid(t, "prefetch=65536", err, "prefetch", "65535")
	if _, err := openNowhere(t, rabbitmq.WithPrefetch(65535)); err == nil || errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("WithPrefetch(65535): %v, want a dial error", err)
	}
}

// TestOpenErrorsHidePassword: whatever Open fails on (a host of a host
// list with an invalid port, which a parser error quotes with the whole
// URL; a bad parameter; nothing listening), its error shows no password.
func TestOpenErrorsHidePassword(t *testing.T) {
	const secret = "s3cret-Passw0rd"
	for _, u := range []string{
		"amqp://guest:" + secret + "@127.0.0.1:x,127.0.0.1:1/",
		"amqp://guest:" + secret + "@127.0.0.1:1/?heartbeat=x",
		"amqp://guest:" + secret + "@127.0.0.1:1,127.0.0.1:2/",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		c, err := rabbitmq.Open(ctx, u)
		cancel()
		if c != nil {
			_ = c.Close()
			t.Fatalf("Open(%s) returned a client", strings.ReplaceAll(u, secret, "xxxxx"))
		}
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Open of a URL with a password: %v, want an error without it", err)
		}
	}
}
