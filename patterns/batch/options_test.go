package batch_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/batch"
)

func nopItems(context.Context, []string) error { return nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// Subscribe fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	c := mwtest.Memory(t)
	for _, tc := range []struct {
		name string
		bad  []batch.Option
	}{
		{"WithCodec", []batch.Option{batch.WithCodec(nil)}},
	} {
		for i, o := range tc.bad {
			sub, err := batch.Subscribe(context.Background(), c, "items", "g", batch.RealTime, nopItems, o)
			if sub != nil {
				t.Errorf("%s #%d: Subscribe returned a subscription with the error %v", tc.name, i, err)
			}
			mwtest.WantInvalid(t, "batch", tc.name, err, tc.name)
		}
	}
}

// TestConstructorsRejectInvalidArguments: a nil consumer or handler and a
// Config with negative fields are rejected by Handler and Subscribe.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := context.Background()
	_, err := batch.Subscribe(ctx, nil, "items", "g", batch.RealTime, nopItems)
	mwtest.WantInvalid(t, "batch", "Subscribe nil consumer", err, "Subscribe", "consumer")
	_, err = batch.Subscribe[string](ctx, c, "items", "g", batch.RealTime, nil)
	mwtest.WantInvalid(t, "batch", "Subscribe nil handler", err, "Handler", "handler")
	_, _, err = batch.Handler[string](batch.RealTime, nil, nil)
	mwtest.WantInvalid(t, "batch", "Handler nil handler", err, "Handler", "handler")
	for _, cfg := range []batch.Config{{Size: -1}, {Size: 8, Window: -time.Second}, {Window: -1}} {
		_, _, err := batch.Handler(cfg, nopItems, nil)
		mwtest.WantInvalid(t, "batch", "Handler config", err, "Config", "Size", "Window")
		_, err = batch.Subscribe(ctx, c, "items", "g", cfg, nopItems)
		mwtest.WantInvalid(t, "batch", "Subscribe config", err, "Config")
	}
	for _, cfg := range []batch.Config{{}, batch.RealTime, {Size: 8}, {Size: 8, Window: time.Millisecond}} {
		if _, _, err := batch.Handler(cfg, nopItems, nil); err != nil {
			t.Errorf("Handler(%+v): %v", cfg, err)
		}
	}
}
