package pubsub_test

import (
	"context"
	"testing"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/pubsub"
)

func nopEvent(context.Context, string, *messaging.Message) error { return nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// Subscribe (and NewPublisher, for WithCodec) fail with ErrInvalidOption
// naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	c := mwtest.Memory(t)
	for _, tc := range []struct {
		name string
		bad  []pubsub.Option
	}{
		{"WithCodec", []pubsub.Option{pubsub.WithCodec(nil)}},
		{"WithMiddleware", []pubsub.Option{pubsub.WithMiddleware(nil)}},
	} {
		for i, o := range tc.bad {
			sub, err := pubsub.Subscribe(context.Background(), c, "events", "sub", nopEvent, o)
			if sub != nil {
				t.Errorf("%s #%d: Subscribe returned a subscription with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "pubsub", tc.name, err, tc.name)
		}
	}
	_, err := pubsub.NewPublisher[string](c, "events", pubsub.WithCodec(nil))
	mwtest.WantInvalid(t, "pubsub", "NewPublisher WithCodec(nil)", err, "WithCodec")
}

// TestConstructorsRejectInvalidArguments: nil publishers, consumers and
// handlers, invalid topics and Subscribe-only options given to NewPublisher
// are rejected.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	c := mwtest.Memory(t)
	_, err := pubsub.NewPublisher[string](nil, "events")
	mwtest.WantInvalid(t, "pubsub", "NewPublisher(nil)", err, "NewPublisher", "publisher")
	_, err = pubsub.NewPublisher[string](c, "")
	mwtest.WantInvalid(t, "pubsub", "NewPublisher empty topic", err, "NewPublisher", "topic")
	_, err = pubsub.NewPublisher[string](c, "events", pubsub.WithMiddleware())
	mwtest.WantInvalid(t, "pubsub", "NewPublisher WithMiddleware", err, "NewPublisher", "WithMiddleware")
	_, err = pubsub.Subscribe[string](context.Background(), nil, "events", "sub", nopEvent)
	mwtest.WantInvalid(t, "pubsub", "Subscribe nil consumer", err, "Subscribe", "consumer")
	_, err = pubsub.Subscribe(context.Background(), c, "", "sub", nopEvent)
	mwtest.WantInvalid(t, "pubsub", "Subscribe empty topic", err, "Subscribe", "topic")
	_, err = pubsub.Subscribe[string](context.Background(), c, "events", "sub", nil)
	mwtest.WantInvalid(t, "pubsub", "Subscribe nil handler", err, "Subscribe", "handler")
}
