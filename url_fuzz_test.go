package messaging_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

// FuzzParseURL: ParseURL never panics, fails only with ErrInvalidURL, and
// RedactURL of what it accepts shows no password and no value of a
// credential parameter.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"nats://user:pw@h:4222?token=t&name=x", "amqp://guest:a@127.0.0.1:5699/", "redis://:6379", "kafka://a:1,b:2?sasl=plain",
		"?%zz", "mem://x?max_message_size=1%", "nats://tok@h", "amqp://u:p%40ss@h/?%", "x://[::1]:80/?nkey=/s&tls_key=k",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := messaging.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, messaging.ErrInvalidURL) {
				t.Fatalf("ParseURL(%q): %v does not wrap ErrInvalidURL", raw, err)
			}
			return
		}
		red := messaging.RedactURL(u)
		back, err := url.Parse(red)
		if err != nil {
			t.Fatalf("RedactURL(%q) = %q does not parse: %v", raw, red, err)
		}
		if back.User != nil {
			if p, ok := back.User.Password(); ok && p != "xxxxx" {
				t.Fatalf("RedactURL(%q) = %q shows password %q", raw, red, p)
			}
			if _, ok := back.User.Password(); !ok && back.User.Username() != "xxxxx" && back.User.Username() != "" {
				t.Fatalf("RedactURL(%q) = %q shows user info %q", raw, red, back.User.Username())
			}
		}
		q, err := url.ParseQuery(back.RawQuery)
		if err != nil {
			t.Fatalf("RedactURL(%q) = %q: query no longer parses: %v", raw, red, err)
		}
		for k, vs := range q {
			for _, v := range vs {
				if messaging.SecretParam(k) && v != "" && v != "xxxxx" {
					t.Fatalf("RedactURL(%q) = %q shows %s=%q", raw, red, k, v)
				}
			}
		}
		if strings.Contains(messaging.RedactError(errors.New("x "+raw), u).Error(), "://") && u.User != nil {
			if p, ok := u.User.Password(); ok && len(p) >= 8 && strings.Contains(messaging.RedactError(errors.New(raw), u).Error(), p) {
				t.Fatalf("RedactError shows the password of %q", raw)
			}
		}
	})
}
