package reqreply

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestDuplicateReplyIsDropped: a second reply with the same correlation ID
// (a request handled twice) finds nobody waiting and is dropped; it does
// not block the reply subscription.
func TestDuplicateReplyIsDropped(t *testing.T) {
	r := &Requester[int, int]{waiting: map[string]chan *messaging.Message{}}
	ch := make(chan *messaging.Message, 1)
	r.waiting["c1"] = ch
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			_ = r.onReply(context.Background(), &messaging.Message{Header: messaging.Header{HeaderCorrelationID: "c1"}})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the duplicate reply blocked the reply handler")
	}
	if len(ch) != 1 {
		t.Fatalf("%d replies handed to the waiting call, want 1", len(ch))
	}
}
