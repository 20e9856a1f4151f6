package messaging_test

import (
	"errors"
	"testing"

	"github.com/msgkit/messaging"
)

// TestPublishErrorText: a call of one message names no count and no index;
// a call of several names both.
func TestPublishErrorText(t *testing.T) {
	refused := errors.New("refused")
	for _, tc := range []struct {
		errs []error
		want string
	}{
		{[]error{refused}, "messaging: publish: refused"},
		{[]error{nil, refused, refused}, "messaging: publish: 2 of 3 messages failed (first, message 1: refused)"},
		{[]error{nil}, "messaging: publish: no error"},
	} {
		err := &messaging.PublishError{Errs: tc.errs}
		if got := err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if len(err.Failed()) > 0 && !errors.Is(err, refused) {
			t.Errorf("%q does not wrap its message's error", err)
		}
	}
}
