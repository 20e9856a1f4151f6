package dedupe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a Store in Redis, shared by every consumer using the same
// prefix. Each record is one string key (prefix + key) with a TTL: "p" while
// claimed, "d" once done.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisStore returns a store using c, with keys prefix + key. The caller
// owns c.
func NewRedisStore(c redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{c: c, prefix: prefix}
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == "p" then return redis.call("DEL", KEYS[1]) end return 0`)

// Claim implements Store.
func (s *RedisStore) Claim(ctx context.Context, key string, lease time.Duration) (State, error) {
	k := s.prefix + key
	for range 3 {
		ok, err := s.c.SetNX(ctx, k, "p", lease).Result()
		if err != nil {
			return 0, fmt.Errorf("dedupe: redis SET NX: %w", err)
		}
		if ok {
			return StateNew, nil
		}
		v, err := s.c.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired in between: claim again
		}
		if err != nil {
			return 0, fmt.Errorf("dedupe: redis GET: %w", err)
		}
		if v == "d" {
			return StateDone, nil
		}
		return StateInProgress, nil
	}
	return StateInProgress, nil
}

// Complete implements Store.
func (s *RedisStore) Complete(ctx context.Context, key string, ttl time.Duration) error {
	if err := s.c.Set(ctx, s.prefix+key, "d", ttl).Err(); err != nil {
		return fmt.Errorf("dedupe: redis SET: %w", err)
	}
	return nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, key string) error {
	if err := releaseScript.Run(ctx, s.c, []string{s.prefix + key}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("dedupe: redis release: %w", err)
	}
	return nil
}
