package middleware_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/time/rate"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware"
	"github.com/msgkit/messaging/middleware/circuitbreaker"
	"github.com/msgkit/messaging/middleware/deadletter"
	"github.com/msgkit/messaging/middleware/dedupe"
	"github.com/msgkit/messaging/middleware/logging"
	"github.com/msgkit/messaging/middleware/metrics"
	mwotel "github.com/msgkit/messaging/middleware/otel"
	"github.com/msgkit/messaging/middleware/ratelimit"
	"github.com/msgkit/messaging/middleware/recovery"
	"github.com/msgkit/messaging/middleware/retry"
	"github.com/msgkit/messaging/middleware/timeout"
)

var nopPublisher = messaging.PublishFunc(func(context.Context, string, ...*messaging.Message) error { return nil })

func recommended(t testing.TB) []messaging.Middleware {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return []messaging.Middleware{
		mwtest.Must(mwotel.New(mwotel.WithTracerProvider(sdktrace.NewTracerProvider()))),
		mwtest.Must(logging.New(slog.New(slog.NewTextHandler(io.Discard, nil)))),
		m.Middleware(),
		mwtest.Must(deadletter.New(nopPublisher, "dlq")),
		mwtest.Must(dedupe.New(dedupe.NewMemoryStore())),
		mwtest.Must(retry.New()),
		mwtest.Must(circuitbreaker.New()),
		mwtest.Must(ratelimit.New(rate.Inf, 1)),
		mwtest.Must(timeout.New(time.Second)),
		mwtest.Must(recovery.New()),
	}
}

func TestRecommendedOrderValidates(t *testing.T) {
	if err := middleware.Validate(recommended(t)...); err != nil {
		t.Fatal(err)
	}
	h, err := middleware.Chain(func(context.Context, *messaging.Message) error { return nil }, recommended(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h(context.Background(), &messaging.Message{ID: "1", Topic: "t", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	mws := append(recommended(t), mwtest.Must(retry.New())) // a second retry layer
	if _, err := middleware.Chain(func(context.Context, *messaging.Message) error { return nil }, mws...); err == nil {
		t.Fatal("a chain with two retry layers validated")
	}
}

// BenchmarkOverhead measures each middleware around a handler that does
// nothing, on the success path; "none" is the bare handler.
func BenchmarkOverhead(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		mw    messaging.Middleware
		newID bool
	}{
		{"none", func(h messaging.Handler) messaging.Handler { return h }, false},
		{"retry", mwtest.Must(retry.New()), false},
		{"retry-inprocess", mwtest.Must(retry.New(retry.WithInProcess())), false},
		{"deadletter", mwtest.Must(deadletter.New(nopPublisher, "dlq")), false},
		{"dedupe-memory", mwtest.Must(dedupe.New(dedupe.NewMemoryStore())), true},
		{"timeout", mwtest.Must(timeout.New(time.Second)), false},
		{"recovery", mwtest.Must(recovery.New()), false},
		{"ratelimit-inf", mwtest.Must(ratelimit.New(rate.Inf, 1)), false},
		{"circuitbreaker", mwtest.Must(circuitbreaker.New()), false},
		{"otel", mwtest.Must(mwotel.New(mwotel.WithTracerProvider(sdktrace.NewTracerProvider()))), false},
		{"metrics", m.Middleware(), false},
		{"logging-debug-off", mwtest.Must(logging.New(slog.New(slog.NewTextHandler(io.Discard, nil)))), false},
		{"all-recommended", func(h messaging.Handler) messaging.Handler { return messaging.Chain(h, recommended(b)...) }, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.mw(func(context.Context, *messaging.Message) error { return nil })
			msgs := make([]*messaging.Message, 1)
			if tc.newID {
				msgs = make([]*messaging.Message, b.N)
			}
			for i := range msgs {
				msgs[i] = &messaging.Message{ID: "id-" + strconv.Itoa(i), Topic: "t", Group: "g", Attempt: 1}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := h(ctx, msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
