package reqreply_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/patterns/reqreply"
)

type req struct {
	A, B int
}
type resp struct {
	Sum int
}

func topic(t *testing.T, c messaging.Client, prefix string) string {
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, name)
		}
	})
	return name
}

func serveAdd(t *testing.T, c messaging.Client, tp string) {
	sub, err := reqreply.Serve(t.Context(), c, tp, func(_ context.Context, r req) (resp, error) {
		if r.A < 0 {
			return resp{}, errors.New("negative numbers are not supported")
		}
		return resp{Sum: r.A + r.B}, nil
	}, reqreply.WithGroup(integration.UniqueName(t, "adders")), reqreply.WithSubscribeOptions(messaging.Concurrency(4)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
}

func newRequester(t *testing.T, c messaging.Client, opts ...reqreply.Option) *reqreply.Requester[req, resp] {
	r, err := reqreply.NewRequester[req, resp](t.Context(), c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close requester: %v", err)
		}
	})
	return r
}

func TestConcurrentRequestsGetTheirOwnReplies(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		tp := topic(t, c, "add")
		serveAdd(t, c, tp)
		r := newRequester(t, c, reqreply.WithTimeout(h.Timeout))
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				start := time.Now()
				got, err := r.Request(t.Context(), tp, req{A: i, B: 1000})
				if err != nil {
					errs <- err
					return
				}
				if got.Sum != i+1000 {
					errs <- fmt.Errorf("request %d: sum %d, want %d", i, got.Sum, i+1000)
				}
				if d := time.Since(start); d > time.Second {
					t.Logf("request %d took %v", i, d)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestNativeAndTopicModes runs the same call natively (where the adapter has
// request/reply) and over topics (WithoutNative).
// modes are Requester and Serve in the default mode (native request/reply
// where the client has it) and over topics.
var modes = []struct {
	name string
	opts []reqreply.Option
}{{"default", nil}, {"topics", []reqreply.Option{reqreply.WithoutNative()}}}

func TestNativeAndTopicModes(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		_, hasNative := c.(messaging.Requester)
		for _, mode := range modes {
			t.Run(mode.name, func(t *testing.T) {
				tp := topic(t, c, "mode")
				sub, err := reqreply.Serve(t.Context(), c, tp, func(_ context.Context, r req) (resp, error) {
					return resp{Sum: r.A * r.B}, nil
				}, append(mode.opts, reqreply.WithGroup(integration.UniqueName(t, "g")))...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Close() })
				r := newRequester(t, c, append(mode.opts, reqreply.WithTimeout(h.Timeout))...)
				if native := r.ReplyTopic() == ""; native != (hasNative && mode.opts == nil) {
					t.Errorf("native mode %v, want %v", native, hasNative && mode.opts == nil)
				}
				got, err := r.Request(t.Context(), tp, req{A: 6, B: 7})
				if err != nil || got.Sum != 42 {
					t.Fatalf("got %v, %v; want 42", got, err)
				}
			})
		}
	})
}

func TestHandlerErrorIsReturnedToCaller(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		tp := topic(t, c, "add-err")
		serveAdd(t, c, tp)
		r := newRequester(t, c, reqreply.WithTimeout(h.Timeout))
		_, err := r.Request(t.Context(), tp, req{A: -1})
		var re *reqreply.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v, want a *RemoteError", err)
		}
		if re.Msg != "negative numbers are not supported" {
			t.Errorf("remote message %q", re.Msg)
		}
	})
}

// TestNoServerTimesOut: with nobody serving, Request fails with ErrTimeout
// (wrapping context.DeadlineExceeded) reporting how long it waited, or at
// once, in both modes; a cancelled context is a cancellation.
func TestNoServerTimesOut(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		for _, mode := range modes {
			t.Run(mode.name, func(t *testing.T) {
				tp := topic(t, c, "nobody")
				r := newRequester(t, c, append(mode.opts, reqreply.WithTimeout(300*time.Millisecond))...)
				start := time.Now()
				_, err := r.Request(t.Context(), tp, req{A: 1})
				elapsed := time.Since(start)
				switch {
				case errors.Is(err, reqreply.ErrTimeout):
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("err = %v, want it to wrap context.DeadlineExceeded too", err)
					}
					if elapsed < 300*time.Millisecond || elapsed > 5*time.Second {
						t.Errorf("gave up after %v, want about 300ms", elapsed)
					}
					checkReportedDuration(t, err, 300*time.Millisecond, elapsed)
				case err == nil:
					t.Fatal("request without a server succeeded")
				default:
					// Brokers that route only to existing queues (RabbitMQ)
					// refuse the request itself, and native request/reply
					// reports no responders: failing fast is better than a
					// timeout.
					t.Logf("request refused at once: %v", err)
				}
				// A cancelled context is a cancellation, not a timeout.
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				if _, err := r.Request(ctx, tp, req{}); !errors.Is(err, context.Canceled) || errors.Is(err, reqreply.ErrTimeout) {
					t.Errorf("cancelled: err = %v, want context.Canceled only", err)
				}
			})
		}
	})
}

var afterRE = regexp.MustCompile(` after ([0-9hmsµn.]+)[:,]`)

// checkReportedDuration fails t unless the "after <duration>" of the
// timeout error err lies in [lo, hi] (hi rounded up to the millisecond, as
// the error rounds).
func checkReportedDuration(t *testing.T, err error, lo, hi time.Duration) {
	t.Helper()
	m := afterRE.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("%q reports no duration", err)
	}
	d, perr := time.ParseDuration(m[1])
	if perr != nil {
		t.Fatalf("%q: duration %q: %v", err, m[1], perr)
	}
	if d < lo || d > hi.Round(time.Millisecond)+time.Millisecond {
		t.Errorf("%q reports %v, want between %v and %v", err, d, lo, hi)
	}
}

func TestRequestAfterClose(t *testing.T) {
	h, _ := integration.LookupHarness("memory")
	c := h.Client(t)
	r, err := reqreply.NewRequester[req, resp](t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Request(t.Context(), "x", req{}); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

func TestGoReportsCompletion(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		tp := topic(t, c, "async")
		col := integration.NewCollector()
		sub, err := c.Subscribe(t.Context(), tp, col.Handler(), messaging.Group(integration.UniqueName(t, "g")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		res := reqreply.Go(t.Context(), c, tp, integration.WithIDs(c, messaging.NewMessage([]byte("a")), messaging.NewMessage([]byte("b")))...)
		ids, err := res.Wait(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 2 || res.Err() != nil {
			t.Fatalf("ids %v err %v", ids, res.Err())
		}
		col.WaitDistinct(t, 2, h.Timeout)
		col.Report(t, ids)

		// A failing publish is reported, not lost.
		bad := reqreply.Go(t.Context(), c, "not a valid topic", messaging.NewMessage(nil))
		<-bad.Done()
		if !errors.Is(bad.Err(), messaging.ErrInvalidTopic) {
			t.Errorf("err = %v, want ErrInvalidTopic", bad.Err())
		}
	})
}

// TestHandlerErrorIsAnAnswer: in both modes the handler's error is sent to
// the caller and the middleware sees the request handled: a retry layer
// does not run the handler again (HandlerFunc: the request is not retried).
func TestHandlerErrorIsAnAnswer(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		for _, mode := range modes {
			t.Run(mode.name, func(t *testing.T) {
				tp := topic(t, c, "answer")
				var calls atomic.Int32
				seen := make(chan error, 4) // what the middleware saw, once it returned
				observe := func(next messaging.Handler) messaging.Handler {
					return func(ctx context.Context, m *messaging.Message) error {
						err := next(ctx, m)
						seen <- err
						return err
					}
				}
				retrying := mwtest.Must(retry.New(retry.WithInProcess(), retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond)))
				sub, err := reqreply.Serve(t.Context(), c, tp, func(context.Context, req) (resp, error) {
					calls.Add(1)
					return resp{}, errors.New("out of stock")
				}, append(mode.opts, reqreply.WithGroup(integration.UniqueName(t, "g")), reqreply.WithMiddleware(observe, retrying))...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Close() })
				r := newRequester(t, c, append(mode.opts, reqreply.WithTimeout(h.Timeout))...)
				_, err = r.Request(t.Context(), tp, req{A: 1})
				var re *reqreply.RemoteError
				if !errors.As(err, &re) || re.Msg != "out of stock" {
					t.Fatalf("err = %v, want a *RemoteError \"out of stock\"", err)
				}
				// Over topics the reply is sent before the middleware returns.
				select {
				case err := <-seen:
					if err != nil {
						t.Errorf("the middleware saw %v, want nil (the request handled)", err)
					}
				case <-time.After(h.Timeout):
					t.Fatal("the middleware never returned")
				}
				if n := calls.Load(); n != 1 {
					t.Errorf("handler ran %d times, want once", n)
				}
			})
		}
	})
}

// TestHandlerPanicIsAnAnswer: in both modes a panic of the handler is
// answered like an error of it (a panic is an error wrapping
// messaging.ErrHandlerPanic): the caller gets a *RemoteError at once with
// the panic's value and no stack trace, the request is not handled again,
// and the server logs the panic with its stack.
func TestHandlerPanicIsAnAnswer(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := h.Client(t)
		for _, mode := range modes {
			t.Run(mode.name, func(t *testing.T) {
				tp := topic(t, c, "panic")
				var calls atomic.Int32
				logs := &logRecorder{}
				sub, err := reqreply.Serve(t.Context(), c, tp, func(context.Context, req) (resp, error) {
					calls.Add(1)
					panic("out of cheese")
				}, append(mode.opts, reqreply.WithGroup(integration.UniqueName(t, "g")), reqreply.WithLogger(slog.New(logs)))...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sub.Close() })
				r := newRequester(t, c, append(mode.opts, reqreply.WithTimeout(h.Timeout))...)
				_, err = r.Request(t.Context(), tp, req{A: 1})
				var re *reqreply.RemoteError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want a *RemoteError", err)
				}
				if want := messaging.ErrHandlerPanic.Error() + ": out of cheese"; re.Msg != want {
					t.Errorf("remote message %q, want %q (no stack trace to the caller)", re.Msg, want)
				}
				if n := calls.Load(); n != 1 {
					t.Errorf("handler ran %d times, want once", n)
				}
				rec, ok := logs.first()
				if !ok {
					t.Fatal("the panic was not logged")
				}
				if !strings.Contains(rec, "out of cheese") || !strings.Contains(rec, "goroutine ") {
					t.Errorf("log record %q lacks the panic's value or its stack", rec)
				}
			})
		}
	})
}

// logRecorder is a slog.Handler keeping each record's message and
// attributes as text.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += " " + a.String()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, s)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) first() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recs) == 0 {
		return "", false
	}
	return l.recs[0], true
}
