package ratelimit_test

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/ratelimit"
)

// At most 100 handler calls per second, with bursts of 10: a consumer that
// protects a downstream API. Calls wait for a token (or for ctx to end).
func ExampleNew() {
	calls := 0
	mw, err := ratelimit.New(rate.Limit(100), 10)
	if err != nil {
		panic(err)
	}
	h := mw(func(context.Context, *messaging.Message) error {
		calls++
		return nil
	})
	for range 10 { // within the burst: no waiting
		if err := h(context.Background(), &messaging.Message{ID: "m", Topic: "crm"}); err != nil {
			panic(err)
		}
	}
	fmt.Println("handled", calls)
	// Output: handled 10
}
