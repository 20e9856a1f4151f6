package stream_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/codec"
	"github.com/msgkit/messaging/patterns/stream"
)

type Deposit struct {
	Account string `json:"account"`
	Cents   int    `json:"cents"`
}

// A projection folds a topic's log into state, saving a checkpoint as it
// goes; run again, it resumes after the checkpoint.
func ExampleProjection() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://stream-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	deposit := func(account string, cents int) {
		m, err := codec.Encode(codec.JSON, Deposit{account, cents})
		if err != nil {
			panic(err)
		}
		if err := client.Publish(ctx, "deposits", m); err != nil {
			panic(err)
		}
	}
	deposit("alice", 500)
	deposit("bob", 300)
	deposit("alice", 200)

	store := &checkpoint.Memory{}
	balances := func(want int) map[string]int {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		seen := 0
		p := &stream.Projection[Deposit, map[string]int]{
			Name:    "balances",
			Topic:   "deposits",
			Initial: map[string]int{},
			Apply: func(s map[string]int, d Deposit, _ *messaging.Message) map[string]int {
				next := map[string]int{d.Account: s[d.Account] + d.Cents}
				for k, v := range s {
					if k != d.Account {
						next[k] = v
					}
				}
				return next
			},
			Store: store,
			OnUpdate: func(map[string]int, *messaging.Message) {
				if seen++; seen == want {
					stop() // a real projection runs until its context ends
				}
			},
		}
		if err := p.Run(rctx, client); err != nil && !errors.Is(err, context.Canceled) {
			panic(err)
		}
		s, _ := p.State()
		return s
	}
	fmt.Println(balances(3))
	deposit("bob", 100)
	fmt.Println(balances(1)) // only the new deposit is applied
	// Output:
	// map[alice:700 bob:300]
	// map[alice:700 bob:400]
}

// Replay reads typed events from any position without a consumer group.
func ExampleReplay() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://replay-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	for _, c := range []int{10, 20, 30} {
		m, err := codec.Encode(codec.JSON, Deposit{"carol", c})
		if err != nil {
			panic(err)
		}
		if err := client.Publish(ctx, "deposits", m); err != nil {
			panic(err)
		}
	}
	got := make(chan int)
	sub, err := stream.Replay(ctx, client, "deposits", messaging.AtOffset("1"), func(_ context.Context, d Deposit, _ *messaging.Message) error {
		got <- d.Cents
		return nil
	}, codec.JSON)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	fmt.Println(<-got, <-got)
	// Output: 20 30
}
