package fault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// The bounds of AdminWhileUnreachable, for a client whose unavailable
// timeout is AdminUnavailableTimeout.
const (
	// AdminUnavailableTimeout is the unavailable timeout the client given
	// to AdminWhileUnreachable must have (URL parameter
	// unavailable_timeout=1s).
	AdminUnavailableTimeout = time.Second
	// AdminMargin is how much later than the unavailable timeout a call
	// without a deadline may return: a redial in progress, the scheduler
	// of a shared machine.
	AdminMargin = 1500 * time.Millisecond
	// AdminShortCtx is the deadline of the second call of each: shorter
	// than the unavailable timeout, so the context ends first.
	AdminShortCtx = 200 * time.Millisecond
	// AdminCtxMargin is how much later than its context's end a call
	// with AdminShortCtx may return.
	AdminCtxMargin = 500 * time.Millisecond
	// AdminGiveUp is how long the scenario waits for a call before it
	// reports it as unbounded and goes on (the call is left running).
	AdminGiveUp = 10 * time.Second
)

// TopicExister is implemented by clients that tell whether a topic exists
// without creating it (NATS, RabbitMQ; msgctl uses it).
type TopicExister interface {
	TopicExists(ctx context.Context, topic string) (bool, error)
}

// AdminCall is one topology or admin call of a client, as
// AdminWhileUnreachable makes it.
type AdminCall struct {
	Name string
	Call func(ctx context.Context) error
}

// AdminCalls returns the topology and admin calls c offers, on topic and
// group (which exist) and on gone (which does not): Provision,
// DeleteTopic (of gone, so that nothing is lost should it get through),
// TopicExists, Inspect, Topics, Subscribe with the group (its setup:
// Subscribe returns once the subscription is established) and, when c
// replays, Stream.Read from the earliest message. A subscription that
// starts is closed at once.
func AdminCalls(c messaging.Client, topic, group, gone string) []AdminCall {
	noop := func(context.Context, *messaging.Message) error { return nil }
	var calls []AdminCall
	add := func(name string, f func(ctx context.Context) error) {
		calls = append(calls, AdminCall{Name: name, Call: f})
	}
	if p, ok := c.(messaging.Provisioner); ok {
		add("Provision", func(ctx context.Context) error { return p.Provision(ctx, topic, group) })
	}
	if d, ok := c.(messaging.TopicDeleter); ok {
		add("DeleteTopic", func(ctx context.Context) error { return d.DeleteTopic(ctx, gone) })
	}
	if e, ok := c.(TopicExister); ok {
		add("TopicExists", func(ctx context.Context) error { _, err := e.TopicExists(ctx, topic); return err })
	}
	if i, ok := c.(messaging.Inspector); ok {
		add("Inspect", func(ctx context.Context) error { _, err := i.Inspect(ctx, topic); return err })
	}
	if l, ok := c.(messaging.TopicLister); ok {
		add("Topics", func(ctx context.Context) error { _, err := l.Topics(ctx); return err })
	}
	add("Subscribe", func(ctx context.Context) error {
		return closeStarted(c.Subscribe(ctx, topic, noop, messaging.Group(group)))
	})
	if s, ok := c.(messaging.Stream); ok && c.Capabilities().Replay {
		add("Read", func(ctx context.Context) error {
			return closeStarted(s.Read(ctx, topic, messaging.Earliest, noop))
		})
	}
	return calls
}

// errStarted: a subscription started although the broker was unreachable.
var errStarted = errors.New("fault: started with the broker unreachable")

func closeStarted(sub messaging.Subscription, err error) error {
	if err != nil {
		return err
	}
	_ = sub.Close()
	return errStarted
}

// AdminWhileUnreachable is the unreachable-broker scenario of the topology
// and admin calls (AdminCalls), which every adapter runs: c reaches its
// broker only through one or more proxies, is connected, and was
// configured with an unavailable timeout of AdminUnavailableTimeout (1s);
// topic and group exist. cut makes the broker unreachable for the rest of
// the test: it cuts the network (Proxy.Cut: every connection closed, new
// ones refused) or silences the broker (Proxy.Silence: connections stay
// open and nothing is answered, which no error reveals). Then each call,
// in a subtest of its name:
//
//   - without a deadline (context.Background()) must fail with an error
//     wrapping messaging.ErrUnavailable within the unavailable timeout
//     and AdminMargin, and not before nine tenths of the timeout (a call
//     that gives up at once would fail on any brief loss);
//   - with a context of AdminShortCtx (200ms, shorter than the timeout)
//     must fail within AdminCtxMargin of the context's end, and not before
//     nine tenths of it, with an error
//     wrapping the context's (context.DeadlineExceeded) or
//     messaging.ErrUnavailable: the library's rule is the context's
//     error, but an adapter may wrap both (the log says which came);
//
// skip names, by call, the calls the adapter cannot bound and why (the
// subtest is skipped with that reason, and the reason is documented on
// the adapter's method). A call failing with messaging.ErrUnsupported
// (the client lacks what it needs, a management API say) is skipped as
// not offered. The durations are logged.
func AdminWhileUnreachable(t *testing.T, c messaging.Client, cut func(), topic, group, gone string, skip map[string]string) {
	t.Helper()
	calls := AdminCalls(c, topic, group, gone)
	for name := range skip {
		found := false
		for _, call := range calls {
			found = found || call.Name == name
		}
		if !found {
			t.Errorf("skip names %q, which is not one of the client's calls", name)
		}
	}
	cut()
	for _, call := range calls {
		t.Run(call.Name, func(t *testing.T) {
			if reason := skip[call.Name]; reason != "" {
				t.Skip(reason)
			}
			// Without a deadline: ErrUnavailable after about the timeout.
			took, err := timedCall(context.Background(), t, call)
			if errors.Is(err, messaging.ErrUnsupported) {
				t.Skipf("not offered by this client: %v", err)
			}
			if !errors.Is(err, errGaveUp) {
				t.Logf("%s without a deadline: failed after %v: %v", call.Name, took.Round(time.Millisecond), err)
				if !errors.Is(err, messaging.ErrUnavailable) {
					t.Errorf("%s without a deadline with the broker unreachable: %v after %v, want an error wrapping messaging.ErrUnavailable",
						call.Name, err, took.Round(time.Millisecond))
				}
				if limit := AdminUnavailableTimeout + AdminMargin; took > limit {
					t.Errorf("%s without a deadline returned after %v with an unavailable timeout of %v, want within %v",
						call.Name, took.Round(time.Millisecond), AdminUnavailableTimeout, limit)
				}
				if least := AdminUnavailableTimeout * 9 / 10; took < least {
					t.Errorf("%s without a deadline gave up after %v with an unavailable timeout of %v, want it to wait for the broker at least %v",
						call.Name, took.Round(time.Millisecond), AdminUnavailableTimeout, least)
				}
			}

			// With a context shorter than the timeout: near its end.
			ctx, cancel := context.WithTimeout(context.Background(), AdminShortCtx)
			defer cancel()
			took, err = timedCall(ctx, t, call)
			if errors.Is(err, errGaveUp) {
				return
			}
			which := "the context's"
			if !errors.Is(err, context.DeadlineExceeded) {
				which = "ErrUnavailable"
			}
			t.Logf("%s with a %v context: failed after %v with %s error: %v", call.Name, AdminShortCtx, took.Round(time.Millisecond), which, err)
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, messaging.ErrUnavailable) {
				t.Errorf("%s with a %v context with the broker unreachable: %v, want an error wrapping the context's or messaging.ErrUnavailable",
					call.Name, AdminShortCtx, err)
			}
			if limit := AdminShortCtx + AdminCtxMargin; took > limit {
				t.Errorf("%s with a %v context returned after %v, want within %v",
					call.Name, AdminShortCtx, took.Round(time.Millisecond), limit)
			}
			if least := AdminShortCtx * 9 / 10; took < least {
				t.Errorf("%s with a %v context gave up after %v, want it to wait for the broker until the context's end",
					call.Name, AdminShortCtx, took.Round(time.Millisecond))
			}
		})
	}
}

// errGaveUp: timedCall stopped waiting for the call.
var errGaveUp = errors.New("fault: gave up waiting for the call")

// timedCall makes call with ctx and returns how long it took and its
// error; a call still running after AdminGiveUp fails the test, and
// timedCall returns errGaveUp (the call is left running).
func timedCall(ctx context.Context, t *testing.T, call AdminCall) (time.Duration, error) {
	t.Helper()
	res := make(chan error, 1)
	begin := time.Now()
	go func() { res <- call.Call(ctx) }()
	select {
	case err := <-res:
		return time.Since(begin), err
	case <-time.After(AdminGiveUp):
		t.Errorf("%s with the broker unreachable had not returned after %v (left running)", call.Name, AdminGiveUp)
		return AdminGiveUp, errGaveUp
	}
}

// CloseWhileUnreachable closes c, whose broker AdminWhileUnreachable (or
// another cut) left unreachable, and fails the test unless Close returns
// within AdminUnavailableTimeout and AdminMargin: a client closing with
// its broker gone must not wait out longer protocol timeouts.
func CloseWhileUnreachable(t *testing.T, c messaging.Client) {
	t.Helper()
	res := make(chan error, 1)
	begin := time.Now()
	go func() { res <- c.Close() }()
	select {
	case err := <-res:
		took := time.Since(begin)
		t.Logf("Close with the broker unreachable: returned after %v: %v", took.Round(time.Millisecond), err)
		if limit := AdminUnavailableTimeout + AdminMargin; took > limit {
			t.Errorf("Close with the broker unreachable took %v with an unavailable timeout of %v, want within %v",
				took.Round(time.Millisecond), AdminUnavailableTimeout, limit)
		}
	case <-time.After(AdminGiveUp):
		t.Errorf("Close with the broker unreachable had not returned after %v (left running)", AdminGiveUp)
	}
}
