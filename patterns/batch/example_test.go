package batch_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/patterns/batch"
)

type Reading struct {
	Sensor string  `json:"sensor"`
	Value  float64 `json:"value"`
}

// The same handler runs per message (batch.RealTime) or in batches of up to
// Size within Window: switching is configuration, not code.
func ExampleSubscribe() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://batch-pattern-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	for i := range 6 {
		m := &messaging.Message{Payload: fmt.Appendf(nil, `{"sensor":"s%d","value":%d}`, i%2, i)}
		if err := client.Publish(ctx, "readings", m); err != nil {
			panic(err)
		}
	}

	var (
		mu      sync.Mutex
		total   float64
		n       int
		largest int
		all     = make(chan struct{})
	)
	store := func(_ context.Context, rs []Reading) error { // e.g. one bulk INSERT
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(rs))
		for _, r := range rs {
			total += r.Value
			n++
		}
		if n == 6 {
			close(all)
		}
		return nil
	}
	cfg := batch.Config{Size: 3, Window: 50 * time.Millisecond} // or batch.RealTime
	sub, err := batch.Subscribe(ctx, client, "readings", "warehouse", cfg, store)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	<-all
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("stored %d readings (sum %.0f) in batches of at most %d\n", n, total, largest)
	// Output: stored 6 readings (sum 15) in batches of at most 3
}
