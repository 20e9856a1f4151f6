package rabbitmq

import (
	"maps"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestCountsOnlyFailures: the client declares x-delivery-limit only on
// servers that count failures alone toward it (4.3 and later); an unknown
// or unparsable version is taken for an old one.
func TestCountsOnlyFailures(t *testing.T) {
	for version, want := range map[string]bool{
		"3.10.8": false, "3.13.7": false, "4.0.5": false, "4.2.1": false,
		"4.3.0": true, "4.3": true, "4.3.0-rc.1": true, "4.10.2": true, "5.0.0": true,
		"": false, "4": false, "x.y": false, "4.x": false,
	} {
		if got := countsOnlyFailures(version); got != want {
			t.Errorf("countsOnlyFailures(%q) = %v, want %v", version, got, want)
		}
	}
}

// TestWithQueueLimit: the broker's refusal of a declaration whose
// x-delivery-limit differs gives the arguments with the queue's limit (or
// none); another argument, or a reply cut before the queue's value, gives
// nil.
func TestWithQueueLimit(t *testing.T) {
	refusal := func(text string) error { return &amqp.Error{Code: amqp.PreconditionFailed, Reason: text} }
	args := amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx"}
	limited := amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx", "x-delivery-limit": int64(3)}
	for _, tc := range []struct {
		text string
		args amqp.Table
		want amqp.Table
	}{
		{"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 't~g' in vhost '/': received none but current is the value '7' of type 'long'",
			args, amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx", "x-delivery-limit": int64(7)}},
		{"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 't~g' in vhost 'v': received the value '3' of type 'long' but current is none",
			limited, args},
		{"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 't~g' in vhost '/': received the value 'dlx' of type 'longstr' but current is none",
			args, nil},
		{"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'a-very-long-name' in vhost '/': received none but current is the val...",
			args, nil},
	} {
		got := withQueueLimit(refusal(tc.text), tc.args)
		if (got == nil) != (tc.want == nil) || (got != nil && !maps.Equal(got, tc.want)) {
			t.Errorf("withQueueLimit(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if got := withQueueLimit(&amqp.Error{Code: amqp.NotFound}, args); got != nil {
		t.Errorf("another error: %v", got)
	}
}
