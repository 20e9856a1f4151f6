package memory_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/internal/mwtest"
)

// wantInvalid is mwtest.WantInvalid without the prefix check: option errors
// and URL parameter errors reach the tests with different prefixes.
func wantInvalid(t *testing.T, what string, err error, names ...string) {
	t.Helper()
	mwtest.WantInvalid(t, "", what, err, names...)
}

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// the constructors it applies to fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	b, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		broker bool // a Broker option (else a Client option)
		bad    []memory.Option
	}{
		{"WithMaxLen", true, []memory.Option{memory.WithMaxLen(-1)}},
		{"WithMaxMessageSize", false, []memory.Option{memory.WithMaxMessageSize(-1)}},
		{"WithLogger", false, []memory.Option{memory.WithLogger(nil)}},
	} {
		for i, o := range tc.bad {
			c, err := memory.New(o)
			if c != nil {
				t.Errorf("%s #%d: New returned a client with the error %v", tc.name, i, err)
			}
			wantInvalid(t, "New "+tc.name, err, tc.name)
			if tc.broker {
				_, err = memory.NewBroker(o)
				wantInvalid(t, "NewBroker "+tc.name, err, tc.name)
			} else {
				_, err = b.NewClient(o)
				wantInvalid(t, "NewClient "+tc.name, err, tc.name)
			}
		}
	}
}

// TestOptionsValid: valid values, including the zero values that mean "no
// limit", are accepted by the constructors they apply to.
func TestOptionsValid(t *testing.T) {
	c, err := memory.New(memory.WithMaxLen(0), memory.WithMaxLen(3), memory.WithMaxMessageSize(0), memory.WithLogger(slog.Default()), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	b, err := memory.NewBroker(memory.WithMaxLen(1))
	if err != nil {
		t.Fatal(err)
	}
	c, err = b.NewClient(memory.WithMaxMessageSize(1), memory.WithLogger(slog.Default()))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Capabilities().MaxMessageSize; got != 1 {
		t.Errorf("MaxMessageSize %d, want 1", got)
	}
	_ = c.Close()
}

// TestOptionsForTheOtherConstructor: a Client option given to NewBroker, or
// a Broker option given to NewClient, is rejected naming it (it would be
// ignored); the first invalid option's error is returned as is.
func TestOptionsForTheOtherConstructor(t *testing.T) {
	_, err := memory.NewBroker(memory.WithMaxMessageSize(1))
	wantInvalid(t, "NewBroker(WithMaxMessageSize)", err, "WithMaxMessageSize", "NewBroker")
	_, err = memory.NewBroker(memory.WithLogger(slog.Default()))
	wantInvalid(t, "NewBroker(WithLogger)", err, "WithLogger", "NewBroker")
	b, err := memory.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.NewClient(memory.WithMaxLen(1))
	wantInvalid(t, "NewClient(WithMaxLen)", err, "WithMaxLen", "NewClient")
	_, err = memory.New(memory.WithMaxLen(-1), memory.WithLogger(nil))
	wantInvalid(t, "two invalid options", err, "WithMaxLen")
	if strings.Contains(err.Error(), "WithLogger") {
		t.Errorf("two invalid options: %q, want the first one's error only", err)
	}
}

// TestURLParametersRejectInvalidValues: mem:// URLs with an invalid
// parameter value fail with ErrInvalidOption naming the parameter.
func TestURLParametersRejectInvalidValues(t *testing.T) {
	for _, tc := range []struct{ query, param string }{
		{"maxlen=-1", "maxlen"},
		{"maxlen=x", "maxlen"},
		{"max_message_size=-1", "max_message_size"},
		{"retention=3", "retention"}, // the old name is an unknown parameter
	} {
		_, err := messaging.Open(t.Context(), "mem://options-test?"+tc.query)
		wantInvalid(t, tc.query, err, tc.param)
	}
}
