package deadletter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/deadletter"
)

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// New fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	c := mwtest.Memory(t)
	for _, tc := range []struct {
		name string
		bad  []deadletter.Option
	}{
		{"WithMaxAttempts", []deadletter.Option{deadletter.WithMaxAttempts(-1)}},
		{"WithPublishTimeout", []deadletter.Option{deadletter.WithPublishTimeout(0), deadletter.WithPublishTimeout(-time.Second)}},
		{"WithRetryDelay", []deadletter.Option{deadletter.WithRetryDelay(-time.Second)}},
	} {
		for i, o := range tc.bad {
			mw, err := deadletter.New(c, "dlq", o)
			if mw != nil {
				t.Errorf("%s #%d: New returned a middleware with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "deadletter", tc.name, err, tc.name)
		}
	}
	if _, err := deadletter.New(c, "dlq", deadletter.WithMaxAttempts(0), deadletter.WithMaxAttempts(3),
		deadletter.WithPublishTimeout(time.Nanosecond), deadletter.WithRetryDelay(0), nil); err != nil {
		t.Error(err)
	}
}

// TestNewRejectsInvalidArguments: a nil publisher and invalid topic names
// are rejected.
func TestNewRejectsInvalidArguments(t *testing.T) {
	_, err := deadletter.New(nil, "dlq")
	mwtest.WantInvalid(t, "deadletter", "nil publisher", err, "New", "publisher")
	for _, topic := range []string{"", "a b", strings.Repeat("t", messaging.MaxNameLength+1)} {
		mw, err := deadletter.New(mwtest.Memory(t), topic)
		if mw != nil {
			t.Errorf("topic %q: New returned a middleware", topic)
		}
		mwtest.WantInvalid(t, "deadletter", "topic "+topic, err, "New", "topic")
	}
}
