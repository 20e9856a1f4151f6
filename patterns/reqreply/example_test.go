package reqreply_test

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/patterns/reqreply"
)

type Quote struct {
	SKU string `json:"sku"`
}

type Price struct {
	Cents int `json:"cents"`
}

// Request/reply over the broker: the caller waits for the answer (with a
// timeout), the service instances share the requests as a group.
func Example() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://reqreply-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	srv, err := reqreply.Serve(ctx, client, "pricing", func(_ context.Context, q Quote) (Price, error) {
		return Price{Cents: 100 * len(q.SKU)}, nil
	}, reqreply.WithGroup("pricing-service"))
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	prices, err := reqreply.NewRequester[Quote, Price](ctx, client, reqreply.WithTimeout(5*time.Second))
	if err != nil {
		panic(err)
	}
	defer prices.Close()
	p, err := prices.Request(ctx, "pricing", Quote{SKU: "sku-42"})
	if err != nil {
		panic(err)
	}
	fmt.Println("price:", p.Cents)
	// Output: price: 600
}
