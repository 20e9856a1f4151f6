package rabbitmqtest_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/rabbitmq"
	"github.com/msgkit/messaging/adapters/rabbitmq/rabbitmqtest"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/integration/fault"
)

// TestCallsUnderResourceAlarm: on a private node under a memory alarm
// (unavailable_timeout 1s), on a connection the broker has blocked (it
// answers nothing, and amqp091's channel calls ignore ctx),
//
//   - Provision, Subscribe, Read, DeleteTopic, TopicExists and Inspect
//     (without the management API) without a deadline fail with
//     messaging.ErrUnavailable within about unavailable_timeout, and with a
//     ctx of 200ms return when it ends (ErrUnavailable and
//     DeadlineExceeded);
//   - reopen: a subscription whose connection was lost while its handler
//     held its only credit starts again on the new connection, which the
//     broker has blocked: the attempt fails with ErrUnavailable within
//     about unavailable_timeout (and is retried), and Subscription.Close
//     returns within the bound.
//
// The alarm clears before the clients close (the cleanups run last first),
// so a call that hangs does not hang the test.
func TestCallsUnderResourceAlarm(t *testing.T) {
	n := rabbitmqtest.StartNode(t)
	p := fault.NewProxy(t, n.Addr())
	const (
		unavailable = time.Second
		bound       = 5 * time.Second
		short       = 200 * time.Millisecond
	)
	retried := make(chan error, 16) // fetch retries of the reopened subscription
	c := rabbitmqtest.Open(t, n.URL()+"?unavailable_timeout=1s&streams=true")
	cRe := rabbitmqtest.Open(t, "amqp://guest:guest@"+p.Addr()+"/?unavailable_timeout=1s",
		rabbitmq.WithLogger(slog.New(fetchRetries(slog.Default().Handler(), retried))))
	topic, gone, group := integration.UniqueName(t, "calls"), integration.UniqueName(t, "gone"), integration.UniqueName(t, "g")
	for _, pr := range []struct {
		c     *rabbitmq.Client
		topic string
	}{{c, topic}, {c, gone}, {cRe, topic}} {
		if err := pr.c.Provision(t.Context(), pr.topic, group); err != nil {
			t.Fatal(err)
		}
	}
	// cRe's subscription holds its only message (and credit) in the
	// handler until release.
	held := newHolder()
	sub, err := cRe.Subscribe(t.Context(), topic, func(context.Context, *messaging.Message) error {
		held.hold()
		return nil
	}, messaging.Group(group), messaging.Concurrency(1), messaging.Prefetch(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.release)
	if err := cRe.Publish(t.Context(), topic, &messaging.Message{Payload: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	<-held.got

	setWatermark(t, n, "absolute", "1")
	t.Cleanup(func() { setWatermark(t, n, "0.4") }) // before the clients close
	awaitBlocked(t, n)
	// A Publish blocks c's connection.
	if err := c.Publish(context.Background(), topic, &messaging.Message{Payload: []byte("blocks")}); !errors.Is(err, messaging.ErrUnavailable) {
		t.Fatalf("Publish under the alarm: %v, want ErrUnavailable", err)
	}

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Provision", func(ctx context.Context) error { return c.Provision(ctx, topic, group, "other") }},
		{"Subscribe", func(ctx context.Context) error {
			s, err := c.Subscribe(ctx, topic, func(context.Context, *messaging.Message) error { return nil }, messaging.Group(group))
			if err == nil {
				_ = s.Close()
			}
			return err
		}},
		{"Read", func(ctx context.Context) error {
			s, err := c.Read(ctx, topic, messaging.Earliest, func(context.Context, *messaging.Message) error { return nil })
			if err == nil {
				_ = s.Close()
			}
			return err
		}},
		{"DeleteTopic", func(ctx context.Context) error { return c.DeleteTopic(ctx, gone) }},
		{"TopicExists", func(ctx context.Context) error { _, err := c.TopicExists(ctx, topic); return err }},
		{"Inspect", func(ctx context.Context) error { _, err := c.Inspect(ctx, topic); return err }},
	}
	for _, call := range calls {
		t.Run(call.name, func(t *testing.T) {
			checkBounded(t, call.name, unavailable, bound, func() error { return call.call(context.Background()) }, messaging.ErrUnavailable)
			ctx, cancel := context.WithTimeout(context.Background(), short)
			defer cancel()
			checkBounded(t, call.name+" with a short ctx", short, bound, func() error { return call.call(ctx) }, messaging.ErrUnavailable, context.DeadlineExceeded)
		})
	}

	t.Run("reopen", func(t *testing.T) {
		p.Cut()
		p.Restore()
		// A Publish waits for the new connection and blocks it.
		err := cRe.Publish(context.Background(), topic, &messaging.Message{Payload: []byte("blocks")})
		if !errors.Is(err, messaging.ErrUnavailable) || !strings.Contains(err.Error(), "blocked") {
			t.Fatalf("Publish on the new connection: %v, want ErrUnavailable because the broker blocked it", err)
		}
		// The held message settles (on the lost channel): the subscription
		// fetches again, finds its channel lost and starts again.
		start := time.Now()
		held.release()
		timeout := time.After(bound)
	wait:
		for {
			select {
			case err := <-retried:
				if errors.Is(err, messaging.ErrUnavailable) {
					took := time.Since(start)
					t.Logf("the subscription's start on the blocked connection failed after %v: %v", took.Round(time.Millisecond), err)
					if took > unavailable+unavailable/2+time.Second { // + the first retry's backoff
						t.Errorf("the start failed after %v, want about %v", took.Round(time.Millisecond), unavailable)
					}
					break wait
				}
			case <-timeout:
				t.Errorf("the subscription's start on the blocked connection has not failed after %v", bound)
				break wait
			}
		}
		checkBounded(t, "Subscription.Close", 0, bound, func() error { _ = sub.Close(); return nil })
	})
}

// checkBounded runs f and checks that it returns within about want (plus
// half a second), and at the latest within bound, with an error wrapping
// each of errs.
func checkBounded(t *testing.T, what string, want, bound time.Duration, f func() error, errs ...error) {
	t.Helper()
	start := time.Now()
	res := make(chan error, 1)
	go func() { res <- f() }()
	select {
	case err := <-res:
		took := time.Since(start)
		t.Logf("%s returned after %v: %v", what, took.Round(time.Millisecond), err)
		if took > want+500*time.Millisecond {
			t.Errorf("%s returned after %v, want about %v", what, took.Round(time.Millisecond), want)
		}
		for _, e := range errs {
			if !errors.Is(err, e) {
				t.Errorf("%s: %v, want an error wrapping %v", what, err, e)
			}
		}
	case <-time.After(bound):
		t.Errorf("%s has not returned after %v", what, bound)
	}
}

// holder holds handlers until the test releases them.
type holder struct {
	got  chan struct{} // a handler is held (a signal, not a count)
	rel  chan struct{}
	once sync.Once
}

func newHolder() *holder {
	return &holder{got: make(chan struct{}, 1), rel: make(chan struct{})}
}

// hold, in a handler, signals got and waits for release.
func (h *holder) hold() {
	select {
	case h.got <- struct{}{}:
	default:
	}
	<-h.rel
}

// release lets the held handlers, and later ones, go on; it is
// idempotent (a test's cleanup calls it too).
func (h *holder) release() { h.once.Do(func() { close(h.rel) }) }

// logErrors is a slog.Handler that passes records on to next and sends
// the error of each record whose message contains msg (nil for a record
// without one) to errs (dropped when full).
type logErrors struct {
	next slog.Handler
	msg  string
	errs chan<- error
}

// fetchRetries is logErrors for the engine's "fetching failed; retrying".
func fetchRetries(next slog.Handler, errs chan<- error) logErrors {
	return logErrors{next, "fetching failed; retrying", errs}
}

func (h logErrors) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (h logErrors) WithAttrs(as []slog.Attr) slog.Handler {
	return logErrors{h.next.WithAttrs(as), h.msg, h.errs}
}
func (h logErrors) WithGroup(g string) slog.Handler {
	return logErrors{h.next.WithGroup(g), h.msg, h.errs}
}

func (h logErrors) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		var err error
		r.Attrs(func(a slog.Attr) bool {
			if e, ok := a.Value.Any().(error); ok && a.Key == "error" {
				err = e
				return false
			}
			return true
		})
		select {
		case h.errs <- err:
		default:
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}
