package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
)

// reusing is a receiver that returns every batch in one array and, when the
// engine calls Receive again, overwrites what the last call returned with
// a poisoned delivery: a receiver may do so (see driver.Receiver.Receive),
// so the engine must have copied everything out by then.
type reusing struct {
	next, total int // messages handed out; messages to hand out
	out         []driver.Delivery
	poison      *messaging.Message

	mu      sync.Mutex
	settled map[string]int // token -> settlements
	wrong   []string       // settlements whose token names another message
	done    chan struct{}  // closed once every message is settled
}

func (r *reusing) Capabilities() messaging.Capabilities {
	return messaging.Capabilities{BrokerAttempts: true, NativeDelay: true}
}

func (r *reusing) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return r, nil
}

func (r *reusing) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	for i := range r.out {
		r.out[i] = driver.Delivery{Msg: r.poison, Token: "poison"}
	}
	if r.next == r.total {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	k := min(n, 7, r.total-r.next) // batches of various sizes
	if cap(r.out) < k {
		r.out = make([]driver.Delivery, k, n)
	}
	r.out = r.out[:k]
	for i := range r.out {
		id := fmt.Sprint(r.next)
		r.next++
		r.out[i] = driver.Delivery{Msg: &messaging.Message{ID: id, Attempt: 1}, Token: id}
	}
	return r.out, nil
}

func (r *reusing) Settle(_ context.Context, batch []driver.Settlement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range batch {
		tok, _ := st.Token.(string)
		if st.Msg == nil || tok != st.Msg.ID {
			r.wrong = append(r.wrong, fmt.Sprintf("token %q for message %v", tok, st.Msg))
		}
		r.settled[tok]++
		if len(r.settled) == r.total && r.done != nil {
			close(r.done)
			r.done = nil
		}
	}
	return nil
}

func (r *reusing) Close(context.Context) error { return nil }

// TestReceiverMayReuseItsSlice: deliveries returned in one array that the
// receiver overwrites at its next Receive reach the handlers (Subscribe
// with one and with four workers, SubscribeBatch) and the settlements
// intact, each once.
func TestReceiverMayReuseItsSlice(t *testing.T) {
	const total = 500
	for _, tc := range []struct {
		name  string
		batch bool
		conc  int
	}{{"Subscribe", false, 1}, {"SubscribeConcurrency4", false, 4}, {"SubscribeBatch", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &reusing{total: total, poison: &messaging.Message{ID: "poison"}, settled: map[string]int{}, done: make(chan struct{})}
			done := r.done
			c := engine.New(r, engine.Options{Name: "reusing", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer c.Close()
			var mu sync.Mutex
			handled := map[string]int{}
			count := func(m *messaging.Message) {
				mu.Lock()
				handled[m.ID]++
				mu.Unlock()
			}
			var (
				sub messaging.Subscription
				err error
			)
			if tc.batch {
				sub, err = c.SubscribeBatch(t.Context(), "t", func(_ context.Context, msgs []*messaging.Message) []error {
					for _, m := range msgs {
						count(m)
					}
					return nil
				}, messaging.BatchSize(5))
			} else {
				sub, err = c.Subscribe(t.Context(), "t", func(_ context.Context, m *messaging.Message) error {
					count(m)
					return nil
				}, messaging.Concurrency(tc.conc), messaging.Prefetch(16))
			}
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("not every message settled within 10s")
			}
			_ = sub.Close()
			r.mu.Lock()
			defer r.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if len(r.wrong) > 0 {
				t.Errorf("%d settlements with the wrong token, first: %s", len(r.wrong), r.wrong[0])
			}
			for i := range total {
				id := fmt.Sprint(i)
				if handled[id] != 1 || r.settled[id] != 1 {
					t.Errorf("message %s handled %d times, settled %d times; want once", id, handled[id], r.settled[id])
				}
			}
			if handled["poison"] > 0 || r.settled["poison"] > 0 {
				t.Errorf("the overwritten deliveries were handled %d times and settled %d times", handled["poison"], r.settled["poison"])
			}
		})
	}
}
