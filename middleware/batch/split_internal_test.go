package batch

import (
	"context"
	"errors"
	"testing"

	"github.com/msgkit/messaging"
)

// TestSplitBytesKeepsResultsInPlace: a native batch split by
// WithMaxBatchBytes settles each message by its own result, whichever part
// it was handled in.
func TestSplitBytesKeepsResultsInPlace(t *testing.T) {
	errBad := errors.New("bad")
	msgs := make([]*messaging.Message, 5)
	for i := range msgs {
		msgs[i] = &messaging.Message{ID: string(rune('a' + i)), Payload: make([]byte, 100)}
	}
	var parts []int
	h := splitBytes(func(_ context.Context, ms []*messaging.Message) []error {
		parts = append(parts, len(ms))
		errs := make([]error, len(ms))
		for i, m := range ms {
			if m.ID == "d" {
				errs[i] = errBad
			}
		}
		return errs
	}, 2*msgs[0].Size())
	errs := h(context.Background(), msgs)
	if len(parts) != 3 {
		t.Fatalf("parts %v, want 3 of at most 2 messages", parts)
	}
	for i, err := range errs {
		if want := msgs[i].ID == "d"; (err != nil) != want {
			t.Errorf("message %s: result %v, want failed %v", msgs[i].ID, err, want)
		}
	}
}
