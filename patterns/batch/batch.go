// Package batch runs one handler either per message (real-time) or on
// windowed bulk batches, chosen by configuration, so the same code serves a
// latency-sensitive deployment and a throughput-oriented one.
//
// Bulk mode is middleware/batch underneath: the subscription runs Size
// handlers at once; each one adds its message to the current batch and
// waits. The batch is handed to the handler when it holds Size messages, or
// messages of middleware/batch's DefaultMaxBytes (1 MiB, by Message.Size),
// or Window has passed since its first message, whichever comes first, and
// every message in it is then acknowledged (nil) or redelivered (error)
// together; a message that does not decode is dropped on its own
// (Permanent) and never reaches the handler. Acknowledgement still happens
// after the handler returned, so delivery stays at-least-once.
//
// Messages with the same Key are handled one at a time by the adapter (per-key
// order), so they never share a batch: a stream of one key is processed in
// batches of one, each after Window. Window must stay well below the
// subscription's AckDeadline.
package batch

import (
	"context"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/optcheck"
	mwbatch "github.com/msgkit/messaging/middleware/batch"
	"github.com/msgkit/messaging/patterns/codec"
)

// Func handles a batch of decoded items, in the order they joined the batch:
// the Size handlers add their messages concurrently, so items of different
// keys may be out of delivery order (see the package documentation for
// keys). A nil result
// acknowledges all of them; an error redelivers all of them (wrap it with
// messaging.Permanent to drop them instead).
type Func[T any] func(ctx context.Context, items []T) error

// Config chooses the mode.
type Config struct {
	// Size is the largest batch. 0 or 1 means per-message (real-time) mode.
	Size int
	// Window is the longest a message waits for its batch to fill (bulk mode
	// only; default 1s).
	Window time.Duration
}

// RealTime is the per-message configuration.
var RealTime = Config{Size: 1}

// DefaultWindow is the Window used when Config.Window is zero.
const DefaultWindow = time.Second

// Option configures Subscribe. An Option given an invalid value makes
// Subscribe fail with an error wrapping messaging.ErrInvalidOption that
// names it.
type Option func(*options) error

type options struct {
	codec   codec.Codec
	subOpts []messaging.SubscribeOption
}

// WithCodec sets the codec (default codec.JSON). A nil c is invalid.
func WithCodec(c codec.Codec) Option {
	return func(o *options) error {
		if c == nil {
			return optcheck.Invalid("batch", "WithCodec", "nil", "needs a codec")
		}
		o.codec = c
		return nil
	}
}

// WithSubscribeOptions passes options to the underlying Subscribe; in bulk
// mode Concurrency and Prefetch are set from Config.Size and override them.
// Nil options are ignored.
func WithSubscribeOptions(opts ...messaging.SubscribeOption) Option {
	return func(o *options) error {
		o.subOpts = append(o.subOpts, opts...)
		return nil
	}
}

// validate rejects a Config with a negative Size or Window.
func (cfg Config) validate() error {
	if cfg.Size < 0 || cfg.Window < 0 {
		return fmt.Errorf("batch: Config{Size: %d, Window: %v}: Size and Window must not be negative: %w", cfg.Size, cfg.Window, messaging.ErrInvalidOption)
	}
	return nil
}

// Handler returns the messaging.Handler that runs h in the mode cfg gives,
// and the subscribe options that mode needs (Concurrency and Prefetch of
// Size in bulk mode, nothing in per-message mode). Use it to wire h into a
// Subscribe call yourself; Subscribe does exactly that. c nil means
// codec.JSON. A nil h, or a Config with a negative Size or Window, is
// rejected with an error wrapping messaging.ErrInvalidOption.
func Handler[T any](cfg Config, h Func[T], c codec.Codec) (messaging.Handler, []messaging.SubscribeOption, error) {
	if h == nil {
		return nil, nil, fmt.Errorf("batch: Handler: nil handler: %w", messaging.ErrInvalidOption)
	}
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	if cfg.Size <= 1 {
		return codec.Handler(c, func(ctx context.Context, v T, _ *messaging.Message) error {
			return h(ctx, []T{v})
		}), nil, nil
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	bulk := func(ctx context.Context, msgs []*messaging.Message) []error {
		errs := make([]error, len(msgs))
		items := make([]T, 0, len(msgs))
		idx := make([]int, 0, len(msgs))
		for i, m := range msgs {
			v, err := codec.Decode[T](c, m)
			if err != nil {
				errs[i] = err // Permanent: this message only
				continue
			}
			items = append(items, v)
			idx = append(idx, i)
		}
		if len(items) > 0 {
			if err := h(ctx, items); err != nil {
				for _, i := range idx {
					errs[i] = err
				}
			}
		}
		return errs
	}
	handler, err := mwbatch.Handler(bulk, mwbatch.WithBatchSize(cfg.Size), mwbatch.WithBatchTimeout(cfg.Window))
	if err != nil {
		return nil, nil, err // it carries its prefix
	}
	return handler, []messaging.SubscribeOption{messaging.Concurrency(cfg.Size), messaging.Prefetch(2 * cfg.Size)}, nil
}

// Subscribe consumes topic as group with h in the mode cfg gives. A nil c
// or h, or an invalid cfg, is rejected with an error wrapping
// messaging.ErrInvalidOption; opts are applied in order and the first error
// is returned.
func Subscribe[T any](ctx context.Context, c messaging.Consumer, topic, group string, cfg Config, h Func[T], opts ...Option) (messaging.Subscription, error) {
	if c == nil {
		return nil, fmt.Errorf("batch: Subscribe: nil consumer: %w", messaging.ErrInvalidOption)
	}
	var o options
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	handler, modeOpts, err := Handler(cfg, h, o.codec)
	if err != nil {
		return nil, err
	}
	subOpts := append(append(append([]messaging.SubscribeOption(nil), o.subOpts...), modeOpts...), messaging.Group(group))
	sub, err := c.Subscribe(ctx, topic, handler, subOpts...)
	if err != nil {
		return nil, fmt.Errorf("batch: subscribe %s to %s: %w", group, topic, err)
	}
	return sub, nil
}
