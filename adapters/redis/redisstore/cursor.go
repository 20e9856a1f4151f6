package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging/middleware/poll"
)

// CursorStore keeps cursors in Redis, one string key (prefix + name)
// each, without expiry.
type CursorStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewCursorStore returns a store using c with keys prefix + name. The
// caller owns c.
func NewCursorStore(c redis.UniversalClient, prefix string) *CursorStore {
	return &CursorStore{c: c, prefix: prefix}
}

// Load implements CursorStore.
func (s *CursorStore) Load(ctx context.Context, name string) (string, error) {
	v, err := s.c.Get(ctx, s.prefix+name).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redisstore: poll: redis cursor %s: %w", name, err)
	}
	return v, nil
}

// Save implements CursorStore.
func (s *CursorStore) Save(ctx context.Context, name, cursor string) error {
	if err := s.c.Set(ctx, s.prefix+name, cursor, 0).Err(); err != nil {
		return fmt.Errorf("redisstore: poll: redis cursor %s: %w", name, err)
	}
	return nil
}

var _ poll.CursorStore = (*CursorStore)(nil)
