package messaging_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"amqp://guest:a@127.0.0.1:5699/", "amqp://guest:xxxxx@127.0.0.1:5699/"},
		{"nats://tok@h:4222", "nats://xxxxx@h:4222"},
		{"nats://h:4222?token=a&name=x", "nats://h:4222?token=xxxxx&name=x"},
		{"nats://h:4222?nkey=/k/seed.nk&creds=/c&tls_key=/t&tls_ca=/ca", "nats://h:4222?nkey=xxxxx&creds=xxxxx&tls_key=xxxxx&tls_ca=/ca"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"kafka://u:p%40ss@a:1,b:2?sasl=plain", "kafka://u:xxxxx@a:1,b:2?sasl=plain"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := messaging.RedactURL(u); got != tc.want {
			t.Errorf("RedactURL(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestRedactErrorOneCharacterPassword: a one-character password is hidden
// in the URL and nowhere else, so the rest of the message reads as written.
func TestRedactErrorOneCharacterPassword(t *testing.T) {
	for _, pw := range []string{"a", "m", "p", ":", "/", "%"} {
		u := &url.URL{Scheme: "amqp", User: url.UserPassword("guest", pw), Host: "127.0.0.1:5699", Path: "/"}
		err := messaging.RedactError(fmt.Errorf("messaging: open %s: dial tcp 127.0.0.1:5699: connect: connection refused: %w", u, messaging.ErrInvalidOption), u)
		want := "messaging: open amqp://guest:xxxxx@127.0.0.1:5699/: dial tcp 127.0.0.1:5699: connect: connection refused: messaging: invalid option"
		if err.Error() != want {
			t.Errorf("password %q:\n got %s\nwant %s", pw, err, want)
		}
		if !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("password %q: chain lost", pw)
		}
	}
}

func TestRedactErrorLongSecretOutsideURL(t *testing.T) {
	u, _ := url.Parse("nats://h:4222?nkey=SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY&token=long-token-value")
	err := messaging.RedactError(errors.New("open SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY: no such file; token long-token-value refused"), u)
	if s := err.Error(); strings.Contains(s, "SUAMK2FG") || strings.Contains(s, "long-token-value") {
		t.Errorf("secret shown: %s", s)
	}
}

func TestRedactErrorURLsInText(t *testing.T) {
	// URLs inside an error text are redacted even when they are not the
	// URL given (a driver echoing a derived URL), and even unparsable ones.
	err := messaging.RedactError(errors.New(`parse "amqp://u:pw@h:bad%zz/?password=x&a=1": invalid`), nil)
	want := `parse "amqp://u:xxxxx@h:bad%zz/?password=xxxxx&a=1": invalid`
	if err.Error() != want {
		t.Errorf("got %s\nwant %s", err, want)
	}
}

func TestParseURLRejectsMalformedQuery(t *testing.T) {
	for _, raw := range []string{"nats://h:1?%zz", "mem://x?max_message_size=1%", "redis://h?a=%G1"} {
		if _, err := messaging.ParseURL(raw); !errors.Is(err, messaging.ErrInvalidURL) {
			t.Errorf("ParseURL(%q): %v, want ErrInvalidURL", raw, err)
		}
	}
	if _, err := messaging.Open(t.Context(), "mem://x?max_message_size=1%25"); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("max_message_size=1%%25: %v, want ErrInvalidOption", err)
	}
}

// TestRedactErrorSecretsOfURL: RedactError hides u's password, or its token
// (a user name without password), and its secret parameters' values outside
// URLs too, from 8 bytes on, also in their escaped forms; a 7-byte one only
// inside URLs. SecretParam matches names in any case, and a ';' between
// parameters (which ParseURL rejects) does not let a secret through.
func TestRedactErrorSecretsOfURL(t *testing.T) {
	for _, tc := range []struct {
		url, secret string
		hidden      bool
	}{
		{"amqp://guest:pw345678@h:5672/", "pw345678", true},
		{"amqp://guest:pw34567@h:5672/", "pw34567", false},
		{"nats://tok45678@h:4222", "tok45678", true},
		{"nats://h:4222?TOKEN=tok45678", "tok45678", true},
		{"kafka://h:9092?SASL_Password=pw345678", "pw345678", true},
		{"amqp://guest:p%40ss%2Fword@h:5672/", "p%40ss%2Fword", true},
		// As url.Userinfo.String escapes it (a space and a colon), which
		// neither QueryEscape nor PathEscape gives.
		{"amqp://guest:pa%20ss%3Aword@h:5672/", "pa%20ss%3Aword", true},
		{"amqp://us%20er%3Aname@h:5672/", "us%20er%3Aname", true},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		err = messaging.RedactError(fmt.Errorf("auth with %s refused: %w", tc.secret, messaging.ErrInvalidOption), u)
		if shown := strings.Contains(err.Error(), tc.secret); shown == tc.hidden {
			t.Errorf("URL %s: %q in %q: shown %v, want shown %v", tc.url, tc.secret, err, shown, !tc.hidden)
		}
		if !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("URL %s: chain lost", tc.url)
		}
	}
	if err := messaging.RedactError(nil, &url.URL{Scheme: "nats", User: url.UserPassword("u", "secret-password")}); err != nil {
		t.Errorf("RedactError(nil) = %v, want nil", err)
	}
	for _, raw := range []string{"nats://h:4222?Token=abc&name=x", "nats://h:4222?NKEY=abc", "kafka://h?SASL_PASSWORD=abc"} {
		u, _ := url.Parse(raw)
		if got := messaging.RedactURL(u); strings.Contains(got, "abc") {
			t.Errorf("RedactURL(%s) = %s, shows the secret", raw, got)
		}
	}
	for _, raw := range []string{"nats://h:4222?name=app;token=abc", "nats://h:4222?token=abc;name=app"} {
		_, err := messaging.ParseURL(raw)
		if !errors.Is(err, messaging.ErrInvalidURL) || strings.Contains(err.Error(), "abc") {
			t.Errorf("ParseURL(%s): %v, want ErrInvalidURL not showing the token", raw, err)
		}
	}
}

// TestRedactErrorKeepsPunctuationAfterURL: a URL in a message ends before
// the message's punctuation, which is not hidden with the URL's last
// secret value, nor shows that value.
func TestRedactErrorKeepsPunctuationAfterURL(t *testing.T) {
	for _, secret := range []string{"abc", "abcdefghij"} {
		raw := "nats://h:4222?token=" + secret
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"open %s: refused", "tried %s, then gave up", "(see %s)", "cannot reach %s.", "open %s:"} {
			got := messaging.RedactError(fmt.Errorf(format, raw), u).Error()
			want := fmt.Sprintf(format, "nats://h:4222?token=xxxxx")
			if got != want {
				t.Errorf("secret %q:\n got %s\nwant %s", secret, got, want)
			}
		}
	}
	// A value ending in such a character, inside a URL, is still hidden whole.
	u, _ := url.Parse("nats://h:4222?token=abc:def&name=x")
	if got, want := messaging.RedactError(fmt.Errorf("open %s: refused", u), u).Error(), "open nats://h:4222?token=xxxxx&name=x: refused"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestParseURLQueryErrorQuotesNoValue: a malformed escape in a query is
// reported by its parameter's name, without quoting any of the value (it
// can be part of a secret), nor a name that does not unescape.
func TestParseURLQueryErrorQuotesNoValue(t *testing.T) {
	for _, tc := range []struct{ raw, names string }{
		{"nats://h:4222?token=ab%zzcd", `parameter "token"`},
		{"nats://u:p@h?name=x&password=s3%c", `parameter "password"`},
		{"redis://h?x=1&token=abc%2", `parameter "token"`},
		{"nats://h?s3%zz=1", "a parameter name"},
		{"nats://h?name=a;token=s3%zz", "';' between parameters"},
	} {
		_, err := messaging.ParseURL(tc.raw)
		if !errors.Is(err, messaging.ErrInvalidURL) {
			t.Fatalf("ParseURL(%q) = %v, want ErrInvalidURL", tc.raw, err)
		}
		// What follows the URL (shown redacted: a name is no secret).
		_, detail, _ := strings.Cut(err.Error(), ": query: ")
		if strings.Contains(detail, "zz") || strings.Contains(detail, "%c") || strings.Contains(detail, "%2 ") || strings.Contains(detail, "s3") || !strings.Contains(detail, tc.names) {
			t.Errorf("ParseURL(%q) = %s: want it to name %s and quote nothing of a value", tc.raw, err, tc.names)
		}
		if strings.Contains(err.Error(), "ab%zz") || strings.Contains(err.Error(), "s3%c") || strings.Contains(err.Error(), "abc%2") {
			t.Errorf("ParseURL(%q) = %s shows a secret", tc.raw, err)
		}
	}
}
