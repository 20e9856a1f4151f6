package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging/middleware/dedupe"
)

// DedupeStore is a dedupe.Store in Redis, shared by every consumer using the same
// prefix. Each record is one string key (prefix + key) with a TTL: "p" while
// claimed, "d" once done.
type DedupeStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewDedupeStore returns a store using c, with keys prefix + key. The caller
// owns c.
func NewDedupeStore(c redis.UniversalClient, prefix string) *DedupeStore {
	return &DedupeStore{c: c, prefix: prefix}
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == "p" then return redis.call("DEL", KEYS[1]) end return 0`)

// Claim implements dedupe.Store.
func (s *DedupeStore) Claim(ctx context.Context, key string, lease time.Duration) (dedupe.State, error) {
	k := s.prefix + key
	for range 3 {
		ok, err := s.c.SetNX(ctx, k, "p", lease).Result()
		if err != nil {
			return 0, fmt.Errorf("redisstore: dedupe: redis SET NX: %w", err)
		}
		if ok {
			return dedupe.StateNew, nil
		}
		v, err := s.c.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired in between: claim again
		}
		if err != nil {
			return 0, fmt.Errorf("redisstore: dedupe: redis GET: %w", err)
		}
		if v == "d" {
			return dedupe.StateDone, nil
		}
		return dedupe.StateInProgress, nil
	}
	return dedupe.StateInProgress, nil
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
	if err := releaseScript.Run(ctx, s.c, []string{s.prefix + key}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: dedupe: redis release: %w", err)
	}
	return nil
}

var _ dedupe.Store = (*DedupeStore)(nil)
