package dlheader_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/dlheader"
)

// TestSet: the envelope replaces an earlier one, keeps other headers,
// truncates the reason, records the time in UTC and leaves the offset out
// when it is not known.
func TestSet(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	h := messaging.Header{"app": "v", dlheader.HeaderOffset: "stale", dlheader.HeaderPrefix + "control": "marker"}
	dlheader.Set(h, dlheader.Failure{Topic: "orders", Group: "g", ID: "m1", Attempts: 3, Err: errors.New(strings.Repeat("e", dlheader.MaxReasonLength+1)), Time: at})
	want := messaging.Header{
		"app":                   "v",
		dlheader.HeaderReason:   strings.Repeat("e", dlheader.MaxReasonLength),
		dlheader.HeaderAttempts: "3",
		dlheader.HeaderTopic:    "orders",
		dlheader.HeaderGroup:    "g",
		dlheader.HeaderID:       "m1",
		dlheader.HeaderTime:     "2026-01-02T02:04:05.000000006Z",
	}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}

	msg := &messaging.Message{Topic: "t", Group: "g2", ID: "m2", Offset: "7", Attempt: 2}
	h = messaging.Header{}
	dlheader.Set(h, dlheader.FailureOf(msg, nil, at))
	if h[dlheader.HeaderReason] != "unknown" || h[dlheader.HeaderTopic] != "t" || h[dlheader.HeaderGroup] != "g2" ||
		h[dlheader.HeaderID] != "m2" || h[dlheader.HeaderAttempts] != "2" {
		t.Errorf("FailureOf: headers %v", h)
	}
	if _, ok := h[dlheader.HeaderOffset]; ok {
		t.Errorf("FailureOf set %s: %v", dlheader.HeaderOffset, h)
	}
	dlheader.Set(h, dlheader.Failure{Offset: "1700000000000-0", Time: at})
	if h[dlheader.HeaderOffset] != "1700000000000-0" {
		t.Errorf("offset: headers %v", h)
	}
}
