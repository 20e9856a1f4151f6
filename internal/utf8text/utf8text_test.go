package utf8text_test

import (
	"testing"

	"github.com/msgkit/messaging/internal/utf8text"
)

func TestValid(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"orders":        "orders",
		"café":          "café",
		"a\xffb":        "a\uFFFDb",
		"a\xff\xfeb":    "a\uFFFDb",
		"\xe2\x82":      "\uFFFD",
		"ok\xc3\x28end": "ok\uFFFD(end",
	} {
		if got := utf8text.Valid(in); got != want {
			t.Errorf("Valid(%q) = %q, want %q", in, got, want)
		}
	}
}
