package reqreply_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/reqreply"
)

func echo(_ context.Context, s string) (string, error) { return s, nil }

// TestOptionsRejectInvalidValues: every option with an invalid value makes
// the function it applies to fail with ErrInvalidOption naming it.
func TestOptionsRejectInvalidValues(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		bad   []reqreply.Option
		serve bool // the option applies to Serve (else to NewRequester)
	}{
		{"WithCodec", []reqreply.Option{reqreply.WithCodec(nil)}, true},
		{"WithTimeout", []reqreply.Option{reqreply.WithTimeout(0), reqreply.WithTimeout(-time.Second)}, false},
		{"WithGroup", []reqreply.Option{reqreply.WithGroup(""), reqreply.WithGroup("a b")}, true},
		{"WithMiddleware", []reqreply.Option{reqreply.WithMiddleware(nil)}, true},
		{"WithLogger", []reqreply.Option{reqreply.WithLogger(nil)}, true},
	} {
		for i, o := range tc.bad {
			var err error
			if tc.serve {
				var sub messaging.Subscription
				sub, err = reqreply.Serve(ctx, c, "rpc", echo, o)
				if sub != nil {
					t.Errorf("%s #%d: Serve returned a subscription with the error %v", tc.name, i, err)
				}
			} else {
				var r *reqreply.Requester[string, string]
				r, err = reqreply.NewRequester[string, string](ctx, c, o)
				if r != nil {
					t.Errorf("%s #%d: NewRequester returned a requester with the error %v", tc.name, i, err)
				}
			}
			mwtest.WantInvalid(t, "reqreply", tc.name, err, tc.name)
		}
	}
}

// TestOptionsOfTheOtherSide: an option of Serve is rejected by
// NewRequester and the other way round, naming it.
func TestOptionsOfTheOtherSide(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := context.Background()
	_, err := reqreply.Serve(ctx, c, "rpc", echo, reqreply.WithTimeout(time.Second))
	mwtest.WantInvalid(t, "reqreply", "Serve WithTimeout", err, "Serve", "WithTimeout")
	for _, o := range []struct {
		name string
		opt  reqreply.Option
	}{{"WithGroup", reqreply.WithGroup("g")}, {"WithSubscribeOptions", reqreply.WithSubscribeOptions()}, {"WithMiddleware", reqreply.WithMiddleware()}} {
		_, err := reqreply.NewRequester[string, string](ctx, c, o.opt)
		mwtest.WantInvalid(t, "reqreply", "NewRequester "+o.name, err, "NewRequester", o.name)
	}
}

// TestConstructorsRejectInvalidArguments: nil clients and handlers are
// rejected.
func TestConstructorsRejectInvalidArguments(t *testing.T) {
	ctx := context.Background()
	_, err := reqreply.NewRequester[string, string](ctx, nil)
	mwtest.WantInvalid(t, "reqreply", "NewRequester(nil)", err, "NewRequester", "client")
	_, err = reqreply.Serve[string, string](ctx, nil, "rpc", echo)
	mwtest.WantInvalid(t, "reqreply", "Serve nil client", err, "Serve", "client")
	_, err = reqreply.Serve(ctx, mwtest.Memory(t), "a b", echo)
	mwtest.WantInvalid(t, "reqreply", "Serve bad topic", err, "Serve", "topic")
	_, err = reqreply.Serve[string, string](ctx, mwtest.Memory(t), "rpc", nil)
	mwtest.WantInvalid(t, "reqreply", "Serve nil handler", err, "Serve", "handler")
}
