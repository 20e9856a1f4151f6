package batch_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/batch"
)

func nopBatch(_ context.Context, msgs []*messaging.Message) []error { return nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// Handler, Subscribe and NewPublisher fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	c := mwtest.Memory(t)
	for _, tc := range []struct {
		name      string
		bad       []batch.Option
		publisher bool // applies to NewPublisher (else to Handler and Subscribe)
		consumer  bool
	}{
		{"WithBatchSize", []batch.Option{batch.WithBatchSize(0), batch.WithBatchSize(-1)}, true, true},
		{"WithMaxBatchBytes", []batch.Option{batch.WithMaxBatchBytes(-1)}, true, true},
		{"WithBatchTimeout", []batch.Option{batch.WithBatchTimeout(-time.Millisecond)}, true, true},
		{"WithMaxInFlight", []batch.Option{batch.WithMaxInFlight(0), batch.WithMaxInFlight(-1)}, true, false},
		{"WithWindow", []batch.Option{batch.WithWindow(0), batch.WithWindow(-time.Second)}, false, true},
		{"WithSendTimeout", []batch.Option{batch.WithSendTimeout(0), batch.WithSendTimeout(-time.Second)}, true, false},
	} {
		for i, o := range tc.bad {
			if tc.consumer {
				h, err := batch.Handler(nopBatch, o)
				if h != nil {
					t.Errorf("%s #%d: Handler returned a handler with the error %v", tc.name, i, err)
				}
				mwtest.WantInvalid(t, "batch", tc.name+" (Handler)", err, tc.name)
				sub, err := batch.Subscribe(context.Background(), c, "t", nopBatch, o)
				if sub != nil {
					t.Errorf("%s #%d: Subscribe returned a subscription with the error %v", tc.name, i, err)
				}
				mwtest.WantInvalid(t, "batch", tc.name+" (Subscribe)", err, tc.name)
			}
			if tc.publisher {
				p, err := batch.NewPublisher(c, o)
				if p != nil {
					t.Errorf("%s #%d: NewPublisher returned a publisher with the error %v", tc.name, i, err)
				}
				mwtest.WantInvalid(t, "batch", tc.name+" (NewPublisher)", err, tc.name)
			}
		}
	}
}

// TestOptionsOfTheOtherSide: an option of the publisher is rejected by the
// consumer functions and the other way round, naming it; WithBatchTimeout and
// WithWindow conflict.
func TestOptionsOfTheOtherSide(t *testing.T) {
	c := mwtest.Memory(t)
	for _, o := range []struct {
		name string
		opt  batch.Option
	}{{"WithMaxInFlight", batch.WithMaxInFlight(2)}, {"WithSendTimeout", batch.WithSendTimeout(time.Second)}} {
		_, err := batch.Handler(nopBatch, o.opt)
		mwtest.WantInvalid(t, "batch", o.name+" in Handler", err, o.name, "Handler")
		_, err = batch.Subscribe(context.Background(), c, "t", nopBatch, o.opt)
		mwtest.WantInvalid(t, "batch", o.name+" in Subscribe", err, o.name, "Subscribe")
	}
	for _, o := range []struct {
		name string
		opt  batch.Option
	}{{"WithWindow", batch.WithWindow(time.Second)}, {"WithSubscribeOptions", batch.WithSubscribeOptions(messaging.Group("g"))}} {
		_, err := batch.NewPublisher(c, o.opt)
		mwtest.WantInvalid(t, "batch", o.name+" in NewPublisher", err, o.name, "NewPublisher")
	}
	_, err := batch.Handler(nopBatch, batch.WithBatchTimeout(time.Millisecond), batch.WithWindow(time.Second))
	mwtest.WantInvalid(t, "batch", "WithBatchTimeout+WithWindow", err, "WithBatchTimeout", "WithWindow")
}

// TestConstructorsRejectInvalidArguments: nil handlers, consumers and
// publishers are rejected; valid options are accepted.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	c := mwtest.Memory(t)
	_, err := batch.Handler(nil)
	mwtest.WantInvalid(t, "batch", "Handler(nil)", err, "Handler", "BatchHandler")
	_, err = batch.Subscribe(context.Background(), c, "t", nil)
	mwtest.WantInvalid(t, "batch", "Subscribe nil handler", err, "Subscribe", "BatchHandler")
	_, err = batch.Subscribe(context.Background(), nil, "t", nopBatch)
	mwtest.WantInvalid(t, "batch", "Subscribe nil consumer", err, "Subscribe", "Consumer")
	_, err = batch.NewPublisher(nil)
	mwtest.WantInvalid(t, "batch", "NewPublisher(nil)", err, "NewPublisher", "publisher")

	if _, err := batch.Handler(nopBatch, batch.WithBatchSize(1), batch.WithMaxBatchBytes(0), batch.WithWindow(time.Millisecond),
		batch.WithSubscribeOptions(), nil); err != nil {
		t.Error(err)
	}
	p, err := batch.NewPublisher(c, batch.WithBatchSize(1), batch.WithMaxBatchBytes(0), batch.WithBatchTimeout(0),
		batch.WithMaxInFlight(1), batch.WithSendTimeout(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}
