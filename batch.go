package messaging

import "context"

// BatchHandler handles messages delivered together. It returns nil when every
// message succeeded, or a slice with one entry per message, in the order of
// msgs: a nil entry is a success, an error is that message's handler result
// (Permanent and RetryAfter work as for a Handler). A slice of any other
// length, or a panic, fails every message of the batch.
type BatchHandler func(ctx context.Context, msgs []*Message) []error

// BatchConsumer is implemented by adapters whose broker hands out messages in
// batches (a JetStream pull fetch, XREADGROUP COUNT, ...). SubscribeBatch is
// Subscribe with the handler called once per fetched batch instead of once per
// message:
//
//   - A batch holds what one fetch from the broker returned: at most
//     BatchSize messages (default DefaultBatchSize). The adapter waits at most
//     BatchWait (default DefaultBatchWait) for a batch to fill and may return
//     fewer messages sooner; it never calls h with an empty batch.
//   - Each message is settled by its own result, after h returns, as
//     Subscribe settles a Handler's result: only failed messages are
//     redelivered, with Attempt+1. MaxAttempts and AckDeadline apply per
//     message; adapters that extend the deadline of a running handler extend
//     those of every message of a running batch.
//   - Batches of one subscription are handled one at a time, in fetch order,
//     so per-key order holds as for Subscribe with Concurrency 1; Concurrency
//     above 1 is rejected with ErrInvalidOption (run more subscriptions in the
//     same group to handle batches in parallel). Prefetch is ignored: the
//     batch is the fetch.
//
// Everything else (groups, StartAt, Close, errors) is as for Subscribe.
// Middleware for single messages cannot wrap a BatchHandler; package
// middleware/batch gathers batches for any Consumer when per-message
// middleware is needed, and uses SubscribeBatch when it is not. Tracing and
// metrics have BatchHandler wrappers of their own (middleware/otel's
// NewBatch, middleware/metrics' BatchMiddleware).
type BatchConsumer interface {
	SubscribeBatch(ctx context.Context, topic string, h BatchHandler, opts ...SubscribeOption) (Subscription, error)
}
