package mwtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/msgkit/messaging"
)

// WantInvalid fails t unless err wraps messaging.ErrInvalidOption, starts
// with the package prefix pkg + ": " (unless pkg is empty: an error that
// reaches the caller through Open or a URL parser carries other prefixes)
// and mentions every one of names.
func WantInvalid(t testing.TB, pkg, what string, err error, names ...string) {
	t.Helper()
	if !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("%s: %v, want ErrInvalidOption", what, err)
		return
	}
	if pkg != "" && !strings.HasPrefix(err.Error(), pkg+": ") {
		t.Errorf("%s: %q does not start with %q", what, err, pkg+": ")
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%s: %q does not name %s", what, err, n)
		}
	}
}
