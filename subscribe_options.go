package messaging

import (
	"fmt"
	"time"
)

// Defaults applied by NewSubscribeOptions.
const (
	DefaultConcurrency = 1
	DefaultAckDeadline = 30 * time.Second
	DefaultBatchSize   = 100
	DefaultBatchWait   = 10 * time.Millisecond
)

// SubscribeOptions is the resolved form of the options given to Subscribe.
// Adapters call NewSubscribeOptions to get it; applications use the option
// functions (Group, Concurrency, ...).
type SubscribeOptions struct {
	// Group names the consumer group; empty means an ephemeral group of one.
	Group string
	// Concurrency is the number of handlers run at once (>= 1). Messages with
	// the same Key go to the same worker, so per-key order holds.
	Concurrency int
	// Prefetch is how many messages may be fetched ahead of the handlers
	// (>= Concurrency).
	Prefetch int
	// AckDeadline is how long a delivered message may stay unacknowledged
	// before the broker redelivers it (to any member of the group). Adapters
	// that can extend it while a handler runs do so.
	AckDeadline time.Duration
	// StartAt is where a group that does not exist yet starts, and where an
	// ephemeral subscription starts. Defaults: Earliest for a new named group
	// (nothing published before the group existed is lost), Latest for an
	// ephemeral subscription.
	StartAt Position
	// MaxAttempts, when > 0, is the most deliveries a message gets for its
	// handler to fail: a failure at Attempt MaxAttempts or later gives the
	// message up (dead-lettering it natively where configured, else
	// acknowledging and logging it). A delivery the subscription's stop
	// ended (an interrupted handler, see Handler, or a message fetched and
	// not handled yet) is never the last: the message comes again, with an
	// Attempt beyond MaxAttempts where the broker counts every delivery
	// (JetStream, RabbitMQ before 4.3). RabbitMQ's adapter also declares
	// it as the quorum queue's delivery-limit from RabbitMQ 4.3 (a
	// backstop, see its package doc); JetStream's MaxDeliver is not set,
	// nor is RabbitMQ's delivery-limit before 4.3, as the server would drop
	// messages given back at a stop. 0 means no limit.
	MaxAttempts int
	// RedeliveryBackoff, when set, spaces out redeliveries: after the k-th
	// delivery of a message fails or is not acknowledged in time, the next
	// one comes RedeliveryBackoff[k-1] later (the last entry repeats).
	// Adapters whose broker keeps such a schedule push it down, so it holds
	// across consumer crashes (Capabilities.BrokerBackoff); a RetryAfter
	// delay returned by the handler still wins for its attempt. Adapters
	// without one ignore it: there a failed message comes back after its
	// RetryAfter delay and an unacknowledged one after AckDeadline.
	RedeliveryBackoff []time.Duration
	// BatchSize and BatchWait shape the batches of BatchConsumer.SubscribeBatch
	// (defaults DefaultBatchSize and DefaultBatchWait); Subscribe ignores
	// them.
	BatchSize int
	BatchWait time.Duration

	startSet bool
}

// SubscribeOption configures one Subscribe call.
type SubscribeOption func(*SubscribeOptions) error

// Group makes the subscription a member of the named consumer group.
func Group(name string) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if err := ValidateName(name); err != nil {
			return fmt.Errorf("messaging: group: %w", err)
		}
		o.Group = name
		return nil
	}
}

// Concurrency sets how many handlers run at once (default 1).
func Concurrency(n int) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: concurrency %d: must be at least 1", ErrInvalidOption, n)
		}
		o.Concurrency = n
		return nil
	}
}

// Prefetch sets how many messages may be fetched ahead of the handlers
// (default: adapter's choice, at least the concurrency).
func Prefetch(n int) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: prefetch %d: must be at least 1", ErrInvalidOption, n)
		}
		o.Prefetch = n
		return nil
	}
}

// AckDeadline sets how long a delivered message may stay unacknowledged
// before it is redelivered (default 30s).
func AckDeadline(d time.Duration) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: ack deadline %v: must be positive", ErrInvalidOption, d)
		}
		o.AckDeadline = d
		return nil
	}
}

// StartAt sets where a new group, or an ephemeral subscription, starts.
func StartAt(p Position) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if err := p.Validate(); err != nil {
			return err
		}
		o.StartAt = p
		o.startSet = true
		return nil
	}
}

// MaxAttempts limits deliveries per message (0, the default, means no limit).
func MaxAttempts(n int) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if n < 0 {
			return fmt.Errorf("%w: max attempts %d: must not be negative", ErrInvalidOption, n)
		}
		o.MaxAttempts = n
		return nil
	}
}

// RedeliveryBackoff sets the delays between redeliveries of a message: the
// wait after its first delivery failed or timed out, after its second, and so
// on; the last delay repeats. See SubscribeOptions.RedeliveryBackoff for
// which adapters keep it. Every delay must be positive.
func RedeliveryBackoff(delays ...time.Duration) SubscribeOption {
	return func(o *SubscribeOptions) error {
		for _, d := range delays {
			if d <= 0 {
				return fmt.Errorf("%w: redelivery backoff %v: every delay must be positive", ErrInvalidOption, delays)
			}
		}
		o.RedeliveryBackoff = append([]time.Duration(nil), delays...)
		return nil
	}
}

// BatchSize sets the most messages in one batch of SubscribeBatch (default
// DefaultBatchSize).
func BatchSize(n int) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: batch size %d: must be at least 1", ErrInvalidOption, n)
		}
		o.BatchSize = n
		return nil
	}
}

// BatchWait sets how long SubscribeBatch waits at most for a batch to fill
// (default DefaultBatchWait).
func BatchWait(d time.Duration) SubscribeOption {
	return func(o *SubscribeOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: batch wait %v: must be positive", ErrInvalidOption, d)
		}
		o.BatchWait = d
		return nil
	}
}

// NewSubscribeOptions applies opts over the defaults and validates them;
// a nil option is ignored (see the package doc), so a Consumer that reads
// its options through it ignores one too. defaultPrefetch is the adapter's
// preferred prefetch; it is raised to the concurrency when lower.
func NewSubscribeOptions(defaultPrefetch int, opts ...SubscribeOption) (SubscribeOptions, error) {
	o := SubscribeOptions{Concurrency: DefaultConcurrency, AckDeadline: DefaultAckDeadline, BatchSize: DefaultBatchSize, BatchWait: DefaultBatchWait}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return SubscribeOptions{}, err
		}
	}
	if o.Prefetch == 0 {
		o.Prefetch = max(defaultPrefetch, 1)
	}
	o.Prefetch = max(o.Prefetch, o.Concurrency)
	if !o.startSet {
		if o.Group == "" {
			o.StartAt = Latest
		} else {
			o.StartAt = Earliest
		}
	}
	return o, nil
}
