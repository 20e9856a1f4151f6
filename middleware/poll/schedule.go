package poll

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/batch"
)

// Mode chooses between handling messages as they arrive and handling them
// in scheduled windows.
type Mode string

const (
	// RealTime hands each message to the handler as soon as it arrives, in a
	// batch of one.
	RealTime Mode = "realtime"
	// Windowed lets messages wait (unacknowledged) and hands them over in
	// batches at the end of every window of Schedule.Every, or as soon as
	// Schedule.MaxWaiting are waiting.
	Windowed Mode = "windowed"
)

// Schedule says how Drain consumes a topic. It is plain data, so the choice
// between batch and real time can come from configuration.
type Schedule struct {
	Mode Mode `json:"mode" yaml:"mode"`
	// Every is the window length for Windowed (required there).
	Every time.Duration `json:"every,omitempty" yaml:"every,omitempty"`
	// MaxWaiting ends a window early once that many messages wait
	// (Windowed; default 1000). It is also the subscription's concurrency,
	// since each waiting message is held by one handler.
	MaxWaiting int `json:"max_waiting,omitempty" yaml:"max_waiting,omitempty"`
}

// DefaultMaxWaiting is Schedule.MaxWaiting when not set.
const DefaultMaxWaiting = 1000

// Drain subscribes h to topic on c according to sched: each message as it
// arrives (RealTime), or in windows (Windowed). Each message's result is its
// own entry in h's result, as with batch.Subscribe. In Windowed mode
// messages wait up to Every before they are handled, so the subscription's
// AckDeadline must exceed Every unless the adapter extends the deadlines of
// running handlers. opts are passed to Subscribe (Concurrency and Prefetch
// are set by Drain).
func Drain(ctx context.Context, c messaging.Consumer, topic string, h batch.BatchHandler, sched Schedule, opts ...messaging.SubscribeOption) (messaging.Subscription, error) {
	switch sched.Mode {
	case RealTime, "":
		// One message at a time as it arrives: no batch fetch to wait for.
		sopts := append(append([]messaging.SubscribeOption(nil), opts...), messaging.Concurrency(1), messaging.Prefetch(2))
		bh, err := batch.Handler(h, batch.WithBatchSize(1), batch.WithBatchTimeout(0))
		if err != nil {
			return nil, err
		}
		return c.Subscribe(ctx, topic, bh, sopts...)
	case Windowed:
		if sched.Every <= 0 {
			return nil, fmt.Errorf("poll: drain: windowed schedule needs Every > 0: %w", messaging.ErrInvalidOption)
		}
		n := sched.MaxWaiting
		if n <= 0 {
			n = DefaultMaxWaiting
		}
		return batch.Subscribe(ctx, c, topic, h, batch.WithBatchSize(n), batch.WithMaxBatchBytes(0), batch.WithWindow(sched.Every), batch.WithSubscribeOptions(opts...))
	}
	return nil, fmt.Errorf("poll: drain: unknown mode %q (want %q or %q): %w", sched.Mode, RealTime, Windowed, messaging.ErrInvalidOption)
}
