package batch_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/middleware/batch"
)

// Subscribe hands messages to a batch handler, up to WithBatchSize at a time
// (one error per message: nil acks it).
func ExampleSubscribe() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://batch-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	for i := range 10 {
		if err := client.Publish(ctx, "clicks", &messaging.Message{Payload: fmt.Appendf(nil, "click-%d", i)}); err != nil {
			panic(err)
		}
	}

	var (
		mu      sync.Mutex
		total   int
		largest int
		all     = make(chan struct{})
	)
	sub, err := batch.Subscribe(ctx, client, "clicks", func(_ context.Context, msgs []*messaging.Message) []error {
		mu.Lock()
		defer mu.Unlock()
		total += len(msgs)
		largest = max(largest, len(msgs))
		if total == 10 {
			close(all)
		}
		return make([]error, len(msgs)) // all handled
	}, batch.WithBatchSize(4), batch.WithSubscribeOptions(messaging.Group("analytics")))
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	<-all
	mu.Lock()
	defer mu.Unlock()
	fmt.Println("handled", total, "in batches of at most", largest)
	// Output: handled 10 in batches of at most 4
}
