package integration

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// PacedPayloadSize is the size of the messages PacedLatency publishes.
const PacedPayloadSize = 1024

// PacedLatency measures the end-to-end latency of messages published at a
// fixed rate (messages per second), one per publish call: what a user
// pacing messages writes. It compares an adapter with the raw client when
// both sides run it with their own publish and subscribe.
//
// subscribe starts consuming (it fails the benchmark itself if it cannot)
// and calls deliver with each message's payload, from any goroutines; stop
// ends the consumption. publish sends one message with the synchronous API
// and returns once it is sent as that API promises.
//
// After subscribing, PacedLatency publishes a warm-up message, again every
// second until one arrives (within a minute), so that group joins,
// connections and metadata are ready; then it publishes b.N messages of
// PacedPayloadSize bytes, one per tick of a time.Ticker of 1s/rate. Each
// payload carries its send time (time.Now().UnixNano() just before the
// publish call, bytes 0-7) and its sequence number (bytes 8-15; 0 is the
// warm-up); the rest is filler. The latency of a message is its first
// delivery's time minus its send time; redeliveries and warm-ups are not
// counted. It waits (up to 2 minutes) until all b.N arrived, then reports
// their p50, p99 and max in microseconds ("p50-µs", "p99-µs", "max-µs").
//
// The timer covers the paced publishing only, so ns/op is the interval
// achieved: 1e9/rate when publish keeps up, more when publish calls take
// longer than the interval (the Ticker drops ticks).
func PacedLatency(b *testing.B, rate int, publish func(ctx context.Context, payload []byte) error, subscribe func(deliver func(payload []byte)) (stop func())) {
	b.Helper()
	var (
		mu      sync.Mutex
		lat     = make([]time.Duration, b.N)
		seen    = make([]bool, b.N+1)
		arrived int
		warm    = make(chan struct{})
		all     = make(chan struct{})
	)
	deliver := func(p []byte) {
		now := time.Now().UnixNano()
		if len(p) < 16 {
			return
		}
		sent, seq := int64(binary.BigEndian.Uint64(p)), binary.BigEndian.Uint64(p[8:])
		mu.Lock()
		defer mu.Unlock()
		if seq > uint64(b.N) || seen[seq] {
			return
		}
		seen[seq] = true
		if seq == 0 {
			close(warm)
			return
		}
		lat[seq-1] = time.Duration(now - sent)
		if arrived++; arrived == b.N {
			close(all)
		}
	}
	stop := subscribe(deliver)
	defer stop()

	ctx := b.Context()
	payload := func(seq int) []byte {
		p := make([]byte, PacedPayloadSize)
		binary.BigEndian.PutUint64(p[8:], uint64(seq))
		for i := 16; i < len(p); i++ {
			p[i] = byte(i)
		}
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		return p
	}
	giveUp := time.After(time.Minute)
	for warmedUp := false; !warmedUp; {
		if err := publish(ctx, payload(0)); err != nil {
			b.Fatalf("paced: warm-up publish: %v", err)
		}
		select {
		case <-warm:
			warmedUp = true
		case <-time.After(time.Second):
		case <-giveUp:
			b.Fatal("paced: no warm-up message arrived in 1 minute")
		}
	}

	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	b.ResetTimer()
	for seq := 1; seq <= b.N; seq++ {
		<-tick.C
		if err := publish(ctx, payload(seq)); err != nil {
			b.Fatalf("paced: publish %d of %d: %v", seq, b.N, err)
		}
	}
	b.StopTimer()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		b.Errorf("paced: %d of %d messages arrived within 2 minutes", arrived, b.N)
		mu.Unlock()
		return
	}
	slices.Sort(lat)
	b.ReportMetric(micros(percentile(lat, 0.50)), "p50-µs")
	b.ReportMetric(micros(percentile(lat, 0.99)), "p99-µs")
	b.ReportMetric(micros(lat[len(lat)-1]), "max-µs")
}

// PacedLatencyClient is PacedLatency for a messaging client: publish is
// c.Publish of one message with the payload, subscribe is c.Subscribe of
// topic with opts (a Group, for example), whose handler delivers
// msg.Payload.
func PacedLatencyClient(b *testing.B, rate int, c messaging.Client, topic string, opts ...messaging.SubscribeOption) {
	b.Helper()
	PacedLatency(b, rate, func(ctx context.Context, p []byte) error {
		return c.Publish(ctx, topic, &messaging.Message{Payload: p})
	}, func(deliver func([]byte)) func() {
		sub, err := c.Subscribe(b.Context(), topic, func(_ context.Context, m *messaging.Message) error {
			deliver(m.Payload)
			return nil
		}, opts...)
		if err != nil {
			b.Fatal(err)
		}
		return func() { _ = sub.Close() }
	})
}

// percentile is the nearest-rank q-quantile (0 < q <= 1) of sorted, which
// is not empty: the smallest value at or above which a fraction q of the
// values lie.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9)) // 1-based; the epsilon absorbs q's rounding
	return sorted[max(0, min(rank-1, len(sorted)-1))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
