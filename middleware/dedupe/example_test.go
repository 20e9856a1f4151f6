package dedupe_test

import (
	"context"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/dedupe"
)

// At-least-once delivery can repeat a message; dedupe runs the handler once
// per message ID (use redisstore.NewDedupeStore to share the record between processes).
func ExampleNew() {
	charged := 0
	mw, err := dedupe.New(dedupe.NewMemoryStore())
	if err != nil {
		panic(err)
	}
	h := mw(func(context.Context, *messaging.Message) error {
		charged++
		return nil
	})
	m := &messaging.Message{ID: "payment-1", Topic: "payments", Attempt: 1}
	for range 3 { // the same message delivered three times
		if err := h(context.Background(), m); err != nil {
			panic(err)
		}
	}
	fmt.Println("charged", charged, "time(s)")
	// Output: charged 1 time(s)
}
