// Package dedupe makes a handler idempotent: a message whose ID was already
// handled successfully is acknowledged without running the handler again.
//
// At-least-once delivery means duplicates: redeliveries after a lost ack, a
// publisher retrying after a lost confirm. The layer records each message it
// handled successfully in a Store, keyed by topic, group and message ID, for
// a TTL: each group of a fan-out handles the message once. A subscription
// without a Group option is an ephemeral group of its own, and its messages
// carry an empty Group: their keys are scoped to the handler that the
// middleware wrapped (each wrap draws a random token, unique across
// processes), so two ephemeral subscriptions of a topic sharing a store
// both handle every message, and each skips its own redeliveries. Wrap the
// handler once per subscription: ephemeral subscriptions given the same
// wrapped handler dedupe as one. The records of an ephemeral subscription
// stay in the store for the TTL after it ends.
//
// Handling is claimed first (for a lease), so two deliveries of the
// same message running at once do not both run the handler: the second gets
// a retryable error wrapping ErrInProgress and comes back later. A failed
// handler releases its claim, so the message can be retried; a consumer that
// crashes mid-way leaves a claim that expires after the lease. A handler
// that runs past its lease releases only its own claim, not that of a
// delivery that claimed the message after the lease expired, when the store
// is a TokenStore (as MemoryStore and redisstore.DedupeStore are). The layer
// never acknowledges a message it has not seen succeed: an error of Claim is
// returned (retryable), not swallowed. An error of Complete, after the
// handler succeeded, is not returned: the message is acknowledged, and a
// later redelivery of it may run the handler once more.
//
// Deduplication is exact only within the TTL and only as far as the store is
// shared: use redisstore.DedupeStore (package github.com/msgkit/messaging/adapters/redis/redisstore) for consumers in several processes. It cannot make
// the handler's side effects atomic with the record: a crash after the
// handler succeeded and before Complete means one more run.
package dedupe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// State is what a Store knows about a key.
type State int

const (
	// StateNew: the key was unknown and is now claimed by the caller.
	StateNew State = iota
	// StateInProgress: someone else claimed the key and has not finished.
	StateInProgress
	// StateDone: the key was handled successfully within the TTL.
	StateDone
)

func (s State) String() string {
	switch s {
	case StateNew:
		return "new"
	case StateInProgress:
		return "in progress"
	case StateDone:
		return "done"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Store records handled keys. Implementations must be safe for concurrent
// use, and Claim must be atomic: of concurrent claims of an unknown key,
// exactly one gets StateNew.
//
// Release cannot tell one claim of a key from another: a holder whose lease
// expired, and whose key another holder then claimed, drops that other
// holder's claim, letting a third run the handler while the second still
// does. A store should also implement TokenStore, which New uses instead.
type Store interface {
	// Claim returns StateNew and claims key for lease if key is unknown (or its
	// claim or record expired); otherwise it returns the key's state.
	Claim(ctx context.Context, key string, lease time.Duration) (State, error)
	// Complete records key as done for ttl, whoever holds its claim: the
	// handler succeeded, so the key is done even if the caller's lease
	// expired and another holder claimed it since.
	Complete(ctx context.Context, key string, ttl time.Duration) error
	// Release drops any claim on key; it does nothing if key is done.
	Release(ctx context.Context, key string) error
}

// TokenStore is a Store whose claims carry a token, so that a holder
// releases its own claim only. New uses ClaimToken and ReleaseToken of a
// store that implements it instead of Claim and Release.
type TokenStore interface {
	Store
	// ClaimToken is Claim that also returns, with StateNew, a token naming
	// this claim, unique among the claims of key (and "" with another state).
	ClaimToken(ctx context.Context, key string, lease time.Duration) (State, string, error)
	// ReleaseToken drops the claim on key named token. It does nothing if
	// key is done, or claimed again after that claim expired.
	ReleaseToken(ctx context.Context, key, token string) error
}

// ErrInProgress is wrapped by the (retryable) error returned for a message
// whose handling another delivery has claimed and not finished.
var ErrInProgress = errors.New("dedupe: message is being handled by another delivery")

// Defaults.
const (
	DefaultTTL        = 24 * time.Hour
	DefaultLease      = 5 * time.Minute
	DefaultRetryDelay = time.Second
)

// Option configures New. An Option given an invalid value makes New fail
// with an error wrapping messaging.ErrInvalidOption that names it.
type Option func(*config) error

type config struct {
	ttl, lease, retryDelay time.Duration
	key                    func(*messaging.Message) string
}

// invalid is the error of option name given value v.
func invalid(name string, v any, why string) error {
	return fmt.Errorf("dedupe: %s(%v): %s: %w", name, v, why, messaging.ErrInvalidOption)
}

// positive is an option setting *dst to d, which must be positive.
func positive(name string, d time.Duration, dst func(*config) *time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid(name, d, "must be positive")
		}
		*dst(c) = d
		return nil
	}
}

// WithTTL is how long a handled message is remembered (default 24h; must be
// positive).
func WithTTL(d time.Duration) Option {
	return positive("WithTTL", d, func(c *config) *time.Duration { return &c.ttl })
}

// WithLease is how long a claim lasts when its holder neither completes nor
// releases it, for example because it crashed (default 5m; must be
// positive). Make it longer than the handler can run.
func WithLease(d time.Duration) Option {
	return positive("WithLease", d, func(c *config) *time.Duration { return &c.lease })
}

// WithInProgressDelay is the RetryAfter delay for a message claimed by
// another delivery (default 1s; 0 asks for an immediate redelivery; a
// negative d is invalid).
func WithInProgressDelay(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("WithInProgressDelay", d, "must not be negative")
		}
		c.retryDelay = d
		return nil
	}
}

// WithKeyFunc sets the function giving the record key of a message (default
// DefaultKey: topic, group and ID, so that each group of a fan-out handles
// the message once). For a message with an empty Group (an ephemeral
// subscription, a group of its own) the store key is f's key scoped to the
// wrapped handler, whatever f: see DefaultKey. A nil f is invalid.
func WithKeyFunc(f func(*messaging.Message) string) Option {
	return func(c *config) error {
		if f == nil {
			return invalid("WithKeyFunc", "nil", "needs a function")
		}
		c.key = f
		return nil
	}
}

// DefaultKey is the default record key: "topic/group/id". For a message
// with an empty Group, delivered to an ephemeral subscription, which is a
// group of its own, the middleware does not store the key as it is: it
// stores "~" + token + "/" + key, where token is random and drawn when the
// middleware wraps a handler, so that ephemeral subscriptions sharing a
// store (in one process, or in several through a shared store) do not take
// each other's messages for duplicates, while each still skips its own
// redeliveries. The same holds for a key of WithKeyFunc.
func DefaultKey(m *messaging.Message) string { return m.Topic + "/" + m.Group + "/" + m.ID }

// New returns the dedupe middleware recording in store. A nil store is
// rejected with an error wrapping messaging.ErrInvalidOption; opts are
// applied in order and the first error is returned.
func New(store Store, opts ...Option) (messaging.Middleware, error) {
	if store == nil {
		return nil, fmt.Errorf("dedupe: New: nil store: %w", messaging.ErrInvalidOption)
	}
	c := config{ttl: DefaultTTL, lease: DefaultLease, retryDelay: DefaultRetryDelay, key: DefaultKey}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	claim, release := claimFuncs(store)
	return func(next messaging.Handler) messaging.Handler {
		// The scope of this wrap's ephemeral messages (see DefaultKey):
		// random, since a store may be shared with other processes.
		ephemeral := "~" + rand.Text() + "/"
		return func(ctx context.Context, msg *messaging.Message) error {
			ctx = layer.Enter(ctx, layer.Frame{Kind: layer.Dedupe})
			if layer.IsProbe(ctx) {
				return next(ctx, msg)
			}
			key := c.key(msg)
			if msg.Group == "" {
				key = ephemeral + key
			}
			st, token, err := claim(ctx, key, c.lease)
			if err != nil {
				return fmt.Errorf("dedupe: claim %s: %w", key, err)
			}
			switch st {
			case StateDone:
				layer.Duplicate(ctx)
				return nil
			case StateInProgress:
				return messaging.RetryAfter(fmt.Errorf("%w: %s", ErrInProgress, key), c.retryDelay)
			}
			herr := layer.Call(ctx, next, msg)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if herr != nil {
				if rerr := release(sctx, key, token); rerr != nil {
					// The claim expires after the lease; the message is not lost.
					return fmt.Errorf("%w (and releasing the dedupe claim failed: %v)", herr, rerr)
				}
				return herr
			}
			// The handler succeeded: acknowledge even if the record fails.
			// Without it a redelivery may run the handler once more, which
			// at-least-once allows; returning an error would guarantee it.
			_ = store.Complete(sctx, key, c.ttl)
			return nil
		}
	}, nil
}

// claimFuncs returns the claim and release of store: those of its
// TokenStore, or its Claim and Release with an empty token.
func claimFuncs(store Store) (
	claim func(ctx context.Context, key string, lease time.Duration) (State, string, error),
	release func(ctx context.Context, key, token string) error,
) {
	if ts, ok := store.(TokenStore); ok {
		return ts.ClaimToken, ts.ReleaseToken
	}
	claim = func(ctx context.Context, key string, lease time.Duration) (State, string, error) {
		st, err := store.Claim(ctx, key, lease)
		return st, "", err
	}
	release = func(ctx context.Context, key, _ string) error { return store.Release(ctx, key) }
	return claim, release
}
