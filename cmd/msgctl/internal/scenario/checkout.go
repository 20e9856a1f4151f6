package scenario

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/queue"
	"github.com/msgkit/messaging/patterns/reqreply"
)

// PaymentRequest asks the payment service to charge an order.
type PaymentRequest struct {
	OrderID string `json:"order_id"`
	Cents   int    `json:"cents"`
}

// PaymentResult is the payment service's answer.
type PaymentResult struct {
	Approved bool   `json:"approved"`
	AuthCode string `json:"auth_code,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Job is background work after a paid order.
type Job struct {
	Kind    string `json:"kind"` // email, inventory or analytics
	OrderID string `json:"order_id"`
}

// MaxPaymentLatency is what checkout promises the customer: the payment
// answer arrives well under a second.
const MaxPaymentLatency = time.Second

// Checkout places orders: each waits for the payment service over
// request/reply (the customer needs the answer now), then hands email,
// inventory and analytics to a background work queue and confirms without
// waiting for them. The email job fails once on the first order to show a
// retry. It fails when a payment took MaxPaymentLatency or more, or a
// background job never completed.
func Checkout(ctx context.Context, env *Env) error {
	const tag = "checkout"
	orders := 5
	if env.Short {
		orders = 3
	}
	paymentTopic, jobsTopic := env.Topic("payments"), env.Topic("fulfilment")
	env.Topic("fulfilment.dlq") // the queue's dead-letter topic, for Cleanup
	defer env.Cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The payment service: answers requests on paymentTopic.
	paySub, err := reqreply.Serve(ctx, env.Client, paymentTopic, func(ctx context.Context, req PaymentRequest) (PaymentResult, error) {
		if req.Cents <= 0 {
			return PaymentResult{Approved: false, Reason: "invalid amount"}, nil
		}
		return PaymentResult{Approved: true, AuthCode: "AUTH-" + req.OrderID}, nil
	}, reqreply.WithGroup(env.Group("payment-service")))
	if err != nil {
		return err
	}
	defer paySub.Close()

	// Background workers: one queue, three kinds of job.
	done := newNotifier()
	var emailFailed atomic.Bool
	work := func(ctx context.Context, j Job, m *messaging.Message) error {
		if j.Kind == "email" && emailFailed.CompareAndSwap(false, true) {
			env.Printf(tag, "  worker: email for %s failed on attempt %d (SMTP timeout), will be retried", j.OrderID, m.Attempt)
			return errors.New("scenario: smtp: timeout")
		}
		env.Printf(tag, "  worker: %-9s done for %s (attempt %d)", j.Kind, j.OrderID, m.Attempt)
		done.add("jobs", 1)
		return nil
	}
	workSub, err := queue.Work(ctx, env.Client, jobsTopic, env.Group("fulfilment-workers"), work,
		queue.WithWorkers(3), queue.WithRetry(5, 50*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	defer workSub.Close()

	payments, err := reqreply.NewRequester[PaymentRequest, PaymentResult](ctx, env.Client, reqreply.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer payments.Close()
	jobs, err := queue.New[Job](env.Client, jobsTopic)
	if err != nil {
		return err
	}

	var slowest time.Duration
	for i := 1; i <= orders; i++ {
		id := fmt.Sprintf("order-%d", i)
		start := time.Now()
		res, err := payments.Request(ctx, paymentTopic, PaymentRequest{OrderID: id, Cents: 1999 * i})
		if err != nil {
			return fmt.Errorf("scenario: checkout %s: payment: %w", id, err)
		}
		took := time.Since(start)
		slowest = max(slowest, took)
		if !res.Approved {
			return fmt.Errorf("scenario: checkout %s: payment declined: %s", id, res.Reason)
		}
		for _, kind := range []string{"email", "inventory", "analytics"} {
			if _, err := jobs.Enqueue(ctx, id, Job{Kind: kind, OrderID: id}); err != nil {
				return fmt.Errorf("scenario: checkout %s: %w", id, err)
			}
		}
		env.Printf(tag, "%s: payment %s in %v; confirmed to the customer after %v (email, inventory, analytics queued)",
			id, res.AuthCode, took.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	}
	if slowest >= MaxPaymentLatency {
		return fmt.Errorf("scenario: checkout: slowest payment took %v, want under %v", slowest, MaxPaymentLatency)
	}
	want := 3 * orders
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := waitFor(wctx, done.sig, func() bool { return done.get("jobs") >= want }); err != nil {
		return fmt.Errorf("scenario: checkout: %d of %d background jobs completed: %w", done.get("jobs"), want, err)
	}
	env.Printf(tag, "all %d payments answered (slowest %v, limit %v); all %d background jobs done, one after a retry",
		orders, slowest.Round(time.Microsecond), MaxPaymentLatency, want)
	return nil
}
