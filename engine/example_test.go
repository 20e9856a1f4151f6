package engine_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/engine"
)

// chanDriver is a driver whose broker is a Go channel. Like a log without
// per-message acknowledgement, it cannot redeliver a message
// (Capabilities.BrokerAttempts false): the engine does it.
type chanDriver struct {
	msgs    chan *messaging.Message
	settled chan string
}

func (d *chanDriver) Capabilities() messaging.Capabilities { return messaging.Capabilities{} }

func (d *chanDriver) OpenReceiver(context.Context, string, messaging.SubscribeOptions) (driver.Receiver, error) {
	return d, nil
}

// Receive waits for a message; Token is what Settle gets back.
func (d *chanDriver) Receive(ctx context.Context, n int) ([]driver.Delivery, error) {
	select {
	case m := <-d.msgs:
		return []driver.Delivery{{Msg: m, Token: m.ID}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Settle is where a broker would be told each outcome.
func (d *chanDriver) Settle(_ context.Context, batch []driver.Settlement) error {
	for _, st := range batch {
		d.settled <- fmt.Sprintf("%v %v", st.Token, st.Outcome)
	}
	return nil
}

func (d *chanDriver) Close(context.Context) error { return nil }

// An adapter's consumer side is engine.New over its driver: the Consumer
// (which the adapter's Client embeds) runs Subscribe on the driver's
// Receive and Settle. Here the broker cannot redeliver, so the engine
// hands the failed message to the handler again itself, with Attempt+1,
// and settles it once, when it succeeded.
func ExampleNew() {
	d := &chanDriver{msgs: make(chan *messaging.Message, 1), settled: make(chan string, 1)}
	consumer := engine.New(d, engine.Options{Name: "chan"})
	defer consumer.Close()

	sub, err := consumer.Subscribe(context.Background(), "orders", func(_ context.Context, m *messaging.Message) error {
		fmt.Println("attempt", m.Attempt, string(m.Payload))
		if m.Attempt == 1 {
			return errors.New("database busy")
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	// What the broker delivers: Topic and Attempt are the adapter's to fill.
	d.msgs <- &messaging.Message{ID: "m1", Topic: "orders", Attempt: 1, Payload: []byte("order #1")}
	fmt.Println("settled:", <-d.settled)
	// Output:
	// attempt 1 order #1
	// attempt 2 order #1
	// settled: m1 ack
}
