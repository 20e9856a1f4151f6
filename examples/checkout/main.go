// Checkout: the customer waits for the payment, answered over request/reply;
// email, inventory and analytics run in the background through a work queue
// that retries failures. The email job fails once to show a retry.
//
//	go run ./examples/checkout                      # in-process broker
//	go run ./examples/checkout -url nats://127.0.0.1:4222
//
// This file is self-contained: copy it into your own module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/queue"
	"github.com/msgkit/messaging/patterns/reqreply"

	// Each adapter registers its URL scheme when imported.
	_ "github.com/msgkit/messaging/adapters/kafka"
	_ "github.com/msgkit/messaging/adapters/memory"
	_ "github.com/msgkit/messaging/adapters/nats"
	_ "github.com/msgkit/messaging/adapters/rabbitmq"
	_ "github.com/msgkit/messaging/adapters/redis"
)

// PaymentRequest asks the payment service to charge an order.
type PaymentRequest struct {
	OrderID string `json:"order_id"`
	Cents   int    `json:"cents"`
}

// PaymentResult is the payment service's answer.
type PaymentResult struct {
	Approved bool   `json:"approved"`
	AuthCode string `json:"auth_code"`
}

// Job is background work after a paid order.
type Job struct {
	Kind    string `json:"kind"` // email, inventory or analytics
	OrderID string `json:"order_id"`
}

func main() {
	url := flag.String("url", "mem://", "broker URL")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *url, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "checkout:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url string, out io.Writer) error {
	client, err := messaging.Open(ctx, url)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	suffix := fmt.Sprint(time.Now().UnixNano()) // fresh names on a shared broker
	paymentsTopic, jobsTopic := "checkout-payments-"+suffix, "checkout-jobs-"+suffix
	if d, ok := client.(messaging.TopicDeleter); ok { // runs after the subscriptions closed
		defer func() {
			for _, t := range []string{paymentsTopic, jobsTopic, jobsTopic + ".dlq"} {
				_ = d.DeleteTopic(context.WithoutCancel(ctx), t)
			}
		}()
	}

	// The payment service answers requests; its instances share a group.
	paySub, err := reqreply.Serve(ctx, client, paymentsTopic, func(_ context.Context, req PaymentRequest) (PaymentResult, error) {
		return PaymentResult{Approved: req.Cents > 0, AuthCode: "AUTH-" + req.OrderID}, nil
	}, reqreply.WithGroup("payment-service"))
	if err != nil {
		return err
	}
	defer paySub.Close()

	// Background workers: one queue, three kinds of job; an error retries.
	var (
		mu         sync.Mutex
		done       = map[string]bool{}
		emailFails = 1
		allDone    = make(chan struct{})
	)
	const orders = 3
	workSub, err := queue.Work(ctx, client, jobsTopic, "fulfilment", func(_ context.Context, j Job, m *messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if j.Kind == "email" && emailFails > 0 {
			emailFails--
			return errors.New("smtp: timeout") // redelivered with Attempt+1
		}
		if !done[j.Kind+"/"+j.OrderID] {
			done[j.Kind+"/"+j.OrderID] = true
			if len(done) == 3*orders {
				close(allDone)
			}
		}
		return nil
	}, queue.WithWorkers(3), queue.WithRetry(5, 20*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	defer workSub.Close()

	payments, err := reqreply.NewRequester[PaymentRequest, PaymentResult](ctx, client, reqreply.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer payments.Close()
	jobs, err := queue.New[Job](client, jobsTopic)
	if err != nil {
		return err
	}

	for i := 1; i <= orders; i++ {
		id := fmt.Sprintf("order-%d", i)
		// The customer waits for this answer only.
		res, err := payments.Request(ctx, paymentsTopic, PaymentRequest{OrderID: id, Cents: 1999 * i})
		if err != nil {
			return fmt.Errorf("%s: payment: %w", id, err)
		}
		if !res.Approved {
			return fmt.Errorf("%s: payment declined", id)
		}
		// The rest happens in the background.
		for _, kind := range []string{"email", "inventory", "analytics"} {
			if _, err := jobs.Enqueue(ctx, id, Job{Kind: kind, OrderID: id}); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "%s: paid (%s), confirmed; email, inventory and analytics queued\n", id, res.AuthCode)
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		return fmt.Errorf("background jobs: %w", ctx.Err())
	}
	fmt.Fprintf(out, "all %d background jobs done (the first email after a retry)\n", 3*orders)
	return nil
}
