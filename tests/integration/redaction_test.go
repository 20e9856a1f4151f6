package integration_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/tests/backends" // registers every adapter
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	return port
}

// TestOpenErrorsHideCredentials sweeps every credential a URL can carry for
// every adapter through a failed connect and invalid-option errors. Each URL
// is opened with two different secrets of the same length: the error texts
// must be identical (so nothing about the secret shows, not even the gaps a
// replaced one-character password would leave), must show "xxxxx" where the
// credential was, and must keep the error chain.
func TestOpenErrorsHideCredentials(t *testing.T) {
	port := closedPort(t)
	addr := "127.0.0.1:" + port
	// S is replaced by the secret.
	cases := []struct {
		url  string
		want error // nil: any error (a failed connect)
	}{
		// userinfo passwords, in failed connects and in option errors
		{"nats://user:S@" + addr, nil},
		{"nats://user:S@" + addr + "?bogus=1", messaging.ErrInvalidOption},
		{"redis://user:S@" + addr, nil},
		{"redis://:S@" + addr + "?bogus=1", messaging.ErrInvalidOption},
		{"redis://:S@" + addr + "?maxlen=x", messaging.ErrInvalidOption},
		{"kafka://user:S@" + addr + "?sasl=plain", nil},
		{"kafka://user:S@" + addr + "?sasl=scram-sha-256", nil},
		{"kafka://user:S@" + addr + "?sasl=scram-sha-512&bogus=1", messaging.ErrInvalidOption},
		{"amqp://guest:S@" + addr + "/", nil},
		{"amqp://guest:S@" + addr + "/?bogus=1", messaging.ErrInvalidOption},
		{"amqps://guest:S@" + addr + "/?prefetch=x", messaging.ErrInvalidOption},
		{"mem://user:S@x?bogus=1", messaging.ErrInvalidOption},
		// NATS: a token as the user, and the token, nkey, creds and TLS key parameters
		{"nats://S@" + addr, nil},
		{"nats://" + addr + "?token=S", nil},
		{"nats://" + addr + "?token=S&bogus=1", messaging.ErrInvalidOption},
		{"nats://" + addr + "?token=S&token=S", messaging.ErrInvalidOption},
		{"nats://" + addr + "?nkey=S", messaging.ErrInvalidOption},
		{"nats://" + addr + "?creds=S", nil},
		{"nats://" + addr + "?creds=S&bogus=1", messaging.ErrInvalidOption},
		{"nats://" + addr + "?tls_cert=/nonexistent/cert.pem&tls_key=S", nil},
		{"nats://" + addr + "?tls_key=S", messaging.ErrInvalidOption},
		// malformed URLs
		{"amqp://guest:S@" + addr + "/?%zz", messaging.ErrInvalidURL},
		{"nats://" + addr + "?token=S&%zz", messaging.ErrInvalidURL},
		{"redis://:S@:6379", messaging.ErrInvalidURL},
	}
	for _, tc := range cases {
		for _, secrets := range [][2]string{{"a", "b"}, {"p", "q"}, {"s3cret-value-1", "s3cret-value-2"}, {"p@ss:w/rd", "q@ss:w/rd"}} {
			texts := [2]string{}
			for i, secret := range secrets {
				raw := strings.Replace(tc.url, "S", escape(tc.url, secret), 1)
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				c, err := messaging.Open(ctx, raw)
				cancel()
				if err == nil {
					_ = c.Close()
					t.Errorf("Open(%s) succeeded", tc.url)
					continue
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("Open(%s): %v, want %v", tc.url, err, tc.want)
				}
				texts[i] = normalise(err.Error())
				if len(secret) >= 8 && strings.Contains(err.Error(), secret) {
					t.Errorf("Open(%s) with secret %q: error shows it: %v", tc.url, secret, err)
				}
			}
			if texts[0] != texts[1] {
				t.Errorf("Open(%s): the error depends on the secret:\n %s\n %s", tc.url, texts[0], texts[1])
			}
			if !strings.HasPrefix(texts[0], "messaging: ") {
				t.Errorf("Open(%s): garbled error %q", tc.url, texts[0])
			}
		}
	}
}

// escape writes secret as it would appear in the URL's part where S is.
func escape(tmpl, secret string) string {
	if strings.Contains(tmpl, "=S") {
		return urlQueryEscape(secret)
	}
	return urlUserEscape(secret)
}

// normalise removes what varies between two runs of the same failed
// connect (client-side ports and timings).
func normalise(s string) string {
	var b strings.Builder
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "127.0.0.1:") && strings.Count(f, ":") == 1 {
			f = "127.0.0.1:PORT"
		}
		b.WriteString(f)
		b.WriteByte(' ')
	}
	return b.String()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func urlUserEscape(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix((&url.URL{User: url.UserPassword("u", s)}).String(), "//u:"), "@")
}
