package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
)

func init() {
	// A driver that fails and echoes its URL, to prove Open redacts.
	messaging.Register("echo-test", func(_ context.Context, u *url.URL, _ messaging.OpenSettings) (messaging.Client, error) {
		return nil, fmt.Errorf("cannot reach %s (raw %s): %w", u.Host, u.String(), messaging.ErrInvalidOption)
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		url  string
		want error
		says string
	}{
		{"", messaging.ErrInvalidURL, "empty URL"},
		{"127.0.0.1:4222", messaging.ErrInvalidURL, ""},
		{"no-scheme-here", messaging.ErrInvalidURL, "no scheme"},
		{"bogus://host", messaging.ErrUnknownScheme, `"bogus"`},
		{"mem://?nope=1", messaging.ErrInvalidOption, "nope"},
		{"mem://?max_message_size=big", messaging.ErrInvalidOption, "max_message_size"},
		{"mem:///path", messaging.ErrInvalidURL, "path"},
	} {
		_, err := messaging.Open(ctx, tc.url)
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%q): %v, want %v", tc.url, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Open(%q): %q does not mention %q", tc.url, err, tc.says)
		}
	}
}

func TestOpenUnknownSchemeListsRegistered(t *testing.T) {
	_, err := messaging.Open(t.Context(), "bogus://x")
	if !strings.Contains(err.Error(), "mem") {
		t.Fatalf("error %q does not list the registered schemes", err)
	}
}

// TestOpenUnknownSchemeNamesImport checks that a shipped adapter's scheme
// that is not registered (this test binary imports only the memory adapter)
// names the package to import.
func TestOpenUnknownSchemeNamesImport(t *testing.T) {
	for scheme, pkg := range map[string]string{
		"nats":   "github.com/msgkit/messaging/adapters/nats",
		"redis":  "github.com/msgkit/messaging/adapters/redis",
		"rediss": "github.com/msgkit/messaging/adapters/redis",
		"kafka":  "github.com/msgkit/messaging/adapters/kafka",
		"amqp":   "github.com/msgkit/messaging/adapters/rabbitmq",
	} {
		_, err := messaging.Open(t.Context(), scheme+"://127.0.0.1:1")
		if !errors.Is(err, messaging.ErrUnknownScheme) || !strings.Contains(err.Error(), `import _ "`+pkg+`"`) {
			t.Errorf("Open(%s://): %v, want it to name %s", scheme, err, pkg)
		}
	}
}

func TestOpenRedactsPassword(t *testing.T) {
	for _, raw := range []string{
		"echo-test://user:s3cret-pw@host:1/",
		"bogus://user:s3cret-pw@host:1/",
		"echo-test://user:s3cret-pw@host:bad-port%zz/",
	} {
		_, err := messaging.Open(t.Context(), raw)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", raw)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	_, err := messaging.Open(t.Context(), "echo-test://user:s3cret-pw@host:1/")
	if !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("redaction lost the error chain: %v", err)
	}
}

// TestParseURLUnescapedCredentials: a password or token with an unescaped
// '#', '?' or '/' makes url.Parse quote part of it (or take it for the
// host); no error may show any of it.
func TestParseURLUnescapedCredentials(t *testing.T) {
	for _, raw := range []string{
		"nats://user:s3cr3tpassw0rd#x@host:4222",
		"nats://user:s3cr3tpassw0rd?x@host:4222",
		"amqp://guest:s3cr3tpassw0rd/x@127.0.0.1:5672/",
		"amqp://guest:s3cr3tpassw0rd%zz@h/",
		"nats://s3cr3tpassw0rd#x@host",
		"nats://user:s3cr3t pass@host",
		// No scheme, or a forgotten one ("guest" is then the scheme):
		// nothing marks where the password begins.
		"//user:s3cr3tpassw0rd@host:4222",
		"guest:s3cr3tpassw0rd@rabbit:5672",
		// ';' between parameters, which url.ParseQuery rejects.
		"nats://h:4222?name=app;token=s3cr3tvalue12",
		"nats://h:4222?token=s3cr3tvalue12;name=app",
		// A '"' in the password: url.Parse quotes it escaped (\").
		"amqp://guest:ab\"s3cr3tpw/x@127.0.0.1:5672/",
	} {
		_, err := messaging.ParseURL(raw)
		if !errors.Is(err, messaging.ErrInvalidURL) {
			t.Errorf("ParseURL(%q): %v, want ErrInvalidURL", raw, err)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseURL(%q): the error shows the secret: %v", raw, err)
		}
		if _, err := messaging.Open(t.Context(), raw); err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Open(%q): %v", raw, err)
		}
	}
	_, err := messaging.ParseURL("nats://user:pw@host:bad")
	if want := "messaging: invalid URL: invalid port after host (percent-encode '/', '?', '#', '@' and ':' in a user, password or token)"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestOpenConfigMergesParams(t *testing.T) {
	_, err := messaging.OpenConfig(t.Context(), messaging.Config{URL: "mem://cfg", Params: map[string]string{"unknown_param": "1"}})
	if !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "unknown_param") {
		t.Fatalf("OpenConfig with an unknown param: %v", err)
	}
	c, err := messaging.OpenConfig(t.Context(), messaging.Config{URL: "mem://cfg", Params: map[string]string{"max_message_size": "10"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Capabilities().MaxMessageSize; got != 10 {
		t.Fatalf("MaxMessageSize %d, want 10 from Params", got)
	}
	err = c.Publish(t.Context(), "t", &messaging.Message{Payload: make([]byte, 11)})
	if !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Fatalf("Publish over the configured limit: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("MESSAGING_URL", "mem://env")
	t.Setenv("MESSAGING_PARAM_MAX_MESSAGE_SIZE", "1KiB")
	cfg := messaging.ConfigFromEnv()
	if cfg.URL != "mem://env" || cfg.Params["max_message_size"] != "1KiB" {
		t.Fatalf("ConfigFromEnv: %+v", cfg)
	}
	c, err := messaging.OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Capabilities().MaxMessageSize; got != 1024 {
		t.Fatalf("MaxMessageSize %d, want 1024", got)
	}
}

func TestMemClientsShareNamedBroker(t *testing.T) {
	ctx := t.Context()
	pub, err := messaging.Open(ctx, "mem://shared-test")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := messaging.Open(ctx, "mem://shared-test")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 1)
	s, err := sub.Subscribe(ctx, "greetings", func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Payload)
		return nil
	}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := pub.Publish(ctx, "greetings", messaging.NewMessage([]byte("hello"))); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "hello" {
		t.Fatalf("got %q", v)
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"duplicate": func() {
			messaging.Register("mem", func(context.Context, *url.URL, messaging.OpenSettings) (messaging.Client, error) { return nil, nil })
		},
		"nil": func() { messaging.Register("nil-driver", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func init() {
	// Registered in mixed case: schemes are case-insensitive.
	messaging.Register("Upper-Echo-Test", func(_ context.Context, u *url.URL, _ messaging.OpenSettings) (messaging.Client, error) {
		return nil, fmt.Errorf("upper echo reached %s: %w", u.Host, messaging.ErrInvalidOption)
	})
}

// TestSchemesCaseInsensitive: Register and Open treat a scheme in any case
// as the same scheme, and Schemes lists it once, in lower case, sorted.
func TestSchemesCaseInsensitive(t *testing.T) {
	for _, raw := range []string{"upper-echo-test://h1", "UPPER-ECHO-TEST://h1", "Upper-Echo-Test://h1"} {
		if _, err := messaging.Open(t.Context(), raw); !errors.Is(err, messaging.ErrInvalidOption) || !strings.Contains(err.Error(), "upper echo reached h1") {
			t.Errorf("Open(%s): %v, want the adapter registered as Upper-Echo-Test", raw, err)
		}
	}
	s := messaging.Schemes()
	if !slices.Contains(s, "upper-echo-test") || !slices.IsSorted(s) {
		t.Errorf("Schemes() = %v, want it sorted with upper-echo-test", s)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Register(%q) after mem did not panic", "MEM")
		}
	}()
	messaging.Register("MEM", func(context.Context, *url.URL, messaging.OpenSettings) (messaging.Client, error) { return nil, nil })
}

// TestOpenConfigParamsWin: a Params entry wins over the same URL parameter.
func TestOpenConfigParamsWin(t *testing.T) {
	c, err := messaging.OpenConfig(t.Context(), messaging.Config{URL: "mem://cfg-wins?max_message_size=5", Params: map[string]string{"max_message_size": "10"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Capabilities().MaxMessageSize; got != 10 {
		t.Fatalf("MaxMessageSize %d, want 10 from Params over 5 from the URL", got)
	}
}
