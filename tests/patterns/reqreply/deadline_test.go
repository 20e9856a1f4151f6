package reqreply_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/patterns/reqreply"
)

// nativeClient returns h's client, skipping the test where the adapter has
// no native request/reply.
func nativeClient(t *testing.T, h integration.Harness) messaging.Client {
	c := h.Client(t)
	if _, ok := c.(messaging.Requester); !ok {
		t.Skipf("%s has no native request/reply", h.Name)
	}
	return c
}

// TestNativeServeDropsExpiredRequests: natively too, requests that waited
// in the server's queue past their caller's deadline never reach the
// handler.
func TestNativeServeDropsExpiredRequests(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := nativeClient(t, h)
		tp := topic(t, c, "expire")
		entered, release := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		var seen []int
		sub, err := reqreply.Serve(t.Context(), c, tp, func(ctx context.Context, r req) (resp, error) {
			mu.Lock()
			seen = append(seen, r.A)
			mu.Unlock()
			if r.A == 0 { // the first request holds the only worker
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return resp{Sum: r.A}, nil
		}, reqreply.WithGroup(integration.UniqueName(t, "g")), reqreply.WithSubscribeOptions(messaging.Concurrency(1)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		r := newRequester(t, c, reqreply.WithTimeout(h.Timeout))

		first := make(chan error, 1)
		go func() {
			_, err := r.Request(t.Context(), tp, req{A: 0})
			first <- err
		}()
		select {
		case <-entered:
		case err := <-first:
			t.Fatalf("first request: %v", err)
		case <-time.After(h.Timeout):
			t.Fatal("the first request never reached the handler")
		}
		// These wait in the server's queue until their callers give up.
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for i := 1; i <= 5; i++ {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
				defer cancel()
				if _, err := r.Request(ctx, tp, req{A: i}); !errors.Is(err, reqreply.ErrTimeout) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("queued request: err = %v, want ErrTimeout", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("first request: %v", err)
		}
		// Handled after the expired ones (one worker, in order).
		if got, err := r.Request(t.Context(), tp, req{A: 100}); err != nil || got.Sum != 100 {
			t.Fatalf("last request: %v, %v", got, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 || seen[0] != 0 || seen[1] != 100 {
			t.Errorf("handler saw requests %v, want [0 100]: the others had expired", seen)
		}
	})
}

// skewedClient is a client whose native requests carry a deadline that has
// already passed on the server's clock, as when the caller's clock is
// behind.
type skewedClient struct {
	messaging.Client
	nr messaging.Requester
}

func (c skewedClient) Request(ctx context.Context, topic string, m *messaging.Message) (*messaging.Message, error) {
	m.Header[reqreply.HeaderDeadline] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	return c.nr.Request(ctx, topic, m)
}

func (c skewedClient) Serve(ctx context.Context, topic string, h messaging.ReplyHandler, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	return c.nr.Serve(ctx, topic, h, opts...)
}

// TestNativeExpiredRequestIsTimeout: a native server does not call the
// handler for a request whose deadline has passed on its clock (the
// middleware sees a success, as over topics), and the caller, still
// waiting, gets ErrTimeout, not a remote error, as over topics.
func TestNativeExpiredRequestIsTimeout(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := nativeClient(t, h)
		tp := topic(t, c, "skew")
		called := make(chan struct{}, 1)
		mwErrs := make(chan error, 1)
		mw := func(next messaging.Handler) messaging.Handler {
			return func(ctx context.Context, m *messaging.Message) error {
				err := next(ctx, m)
				mwErrs <- err
				return err
			}
		}
		sub, err := reqreply.Serve(t.Context(), c, tp, func(context.Context, req) (resp, error) {
			called <- struct{}{}
			return resp{}, nil
		}, reqreply.WithGroup(integration.UniqueName(t, "g")), reqreply.WithMiddleware(mw))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		r := newRequester(t, skewedClient{Client: c, nr: c.(messaging.Requester)}, reqreply.WithTimeout(h.Timeout))
		if r.ReplyTopic() != "" {
			t.Fatal("the requester is not native")
		}
		_, err = r.Request(t.Context(), tp, req{A: 1})
		if !errors.Is(err, reqreply.ErrTimeout) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
		var re *reqreply.RemoteError
		if errors.As(err, &re) {
			t.Errorf("err = %v, a RemoteError", err)
		}
		select {
		case <-called:
			t.Error("the handler was called for an expired request")
		default:
		}
		select {
		case err := <-mwErrs:
			if err != nil {
				t.Errorf("middleware saw %v, want nil", err)
			}
		default:
			t.Error("the middleware did not see the request")
		}
	})
}
