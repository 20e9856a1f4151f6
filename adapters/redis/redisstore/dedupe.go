package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging/driver"
	"github.com/msgkit/messaging/middleware/dedupe"
)

// DedupeStore is a dedupe.TokenStore in Redis, shared by every consumer
// using the same prefix. Each record is one string key (prefix + key) with a
// TTL: "p:" and the claim's token while claimed ("p" if claimed by an
// earlier version of this store), "d" once done.
type DedupeStore struct{ keys }

// NewDedupeStore returns a store using c, with keys prefix + key. The caller
// owns c.
func NewDedupeStore(c redis.UniversalClient, prefix string) *DedupeStore {
	return &DedupeStore{keys{c: c, prefix: prefix}}
}

// claimed is the value of a key claimed with token.
func claimed(token string) string { return "p:" + token }

var (
	// releaseScript deletes KEYS[1] if it is claimed (by anyone).
	releaseScript = redis.NewScript(`local v = redis.call("GET", KEYS[1]) if v and string.sub(v, 1, 1) == "p" then return redis.call("DEL", KEYS[1]) end return 0`)
	// releaseTokenScript deletes KEYS[1] if it holds ARGV[1], the claim of
	// one token.
	releaseTokenScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// Claim implements dedupe.Store.
func (s *DedupeStore) Claim(ctx context.Context, key string, lease time.Duration) (dedupe.State, error) {
	st, _, err := s.ClaimToken(ctx, key, lease)
	return st, err
}

// ClaimToken implements dedupe.TokenStore. Tokens are new message IDs
// (driver.NewID), unique across processes.
func (s *DedupeStore) ClaimToken(ctx context.Context, key string, lease time.Duration) (dedupe.State, string, error) {
	k := s.prefix + key
	token := driver.NewID()
	for range 3 {
		ok, err := s.c.SetNX(ctx, k, claimed(token), lease).Result()
		if err != nil {
			return 0, "", fmt.Errorf("redisstore: dedupe: redis SET NX: %w", err)
		}
		if ok {
			return dedupe.StateNew, token, nil
		}
		v, err := s.c.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired in between: claim again
		}
		if err != nil {
			return 0, "", fmt.Errorf("redisstore: dedupe: redis GET: %w", err)
		}
		if v == "d" {
			return dedupe.StateDone, "", nil
		}
		return dedupe.StateInProgress, "", nil
	}
	return dedupe.StateInProgress, "", nil
}

// Complete implements dedupe.Store.
func (s *DedupeStore) Complete(ctx context.Context, key string, ttl time.Duration) error {
	if err := s.c.Set(ctx, s.prefix+key, "d", ttl).Err(); err != nil {
		return fmt.Errorf("redisstore: dedupe: redis SET: %w", err)
	}
	return nil
}

// Release implements dedupe.Store.
func (s *DedupeStore) Release(ctx context.Context, key string) error {
	return s.release(ctx, releaseScript, key)
}

// ReleaseToken implements dedupe.TokenStore.
func (s *DedupeStore) ReleaseToken(ctx context.Context, key, token string) error {
	return s.release(ctx, releaseTokenScript, key, claimed(token))
}

// release runs script on the key of key with args.
func (s *DedupeStore) release(ctx context.Context, script *redis.Script, key string, args ...any) error {
	if err := script.Run(ctx, s.c, []string{s.prefix + key}, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: dedupe: redis release: %w", err)
	}
	return nil
}

var _ dedupe.TokenStore = (*DedupeStore)(nil)
