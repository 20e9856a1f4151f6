package queue_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	_ "github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/patterns/queue"
)

type Email struct {
	To string `json:"to"`
}

// A work queue: jobs are shared by the workers of a group, failures are
// retried with backoff, and what keeps failing goes to "<topic>.dlq".
func Example() {
	ctx := context.Background()
	client, err := messaging.Open(ctx, "mem://queue-example")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	done := make(chan string)
	sub, err := queue.Work(ctx, client, "emails", "mailers", func(_ context.Context, e Email, m *messaging.Message) error {
		if m.Attempt == 1 {
			return errors.New("smtp timeout") // retried
		}
		done <- fmt.Sprintf("sent to %s on attempt %d", e.To, m.Attempt)
		return nil
	}, queue.WithWorkers(4), queue.WithRetry(3, time.Millisecond, 10*time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	q, err := queue.New[Email](client, "emails")
	if err != nil {
		panic(err)
	}
	if _, err := q.Enqueue(ctx, "ada@example.com", Email{To: "ada@example.com"}); err != nil {
		panic(err)
	}
	fmt.Println(<-done)
	fmt.Println("dead letters go to", queue.DeadLetterTopic("emails"))
	// Output:
	// sent to ada@example.com on attempt 2
	// dead letters go to emails.dlq
}
