package poll

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// CursorStore keeps a Source's cursors by name. Implementations must be safe
// for concurrent use.
type CursorStore interface {
	// Load returns the cursor saved under name, or "" if there is none.
	Load(ctx context.Context, name string) (string, error)
	// Save stores cursor under name, durably where the store is durable.
	Save(ctx context.Context, name, cursor string) error
}

// MemoryCursorStore keeps cursors in process memory (lost on restart).
type MemoryCursorStore struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemoryCursorStore returns an empty MemoryCursorStore.
func NewMemoryCursorStore() *MemoryCursorStore {
	return &MemoryCursorStore{m: map[string]string{}}
}

// Load implements CursorStore.
func (s *MemoryCursorStore) Load(_ context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

// Save implements CursorStore.
func (s *MemoryCursorStore) Save(_ context.Context, name, cursor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = cursor
	return nil
}

// RedisCursorStore keeps cursors in Redis, one string key (prefix + name)
// each, without expiry.
type RedisCursorStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisCursorStore returns a store using c with keys prefix + name. The
// caller owns c.
func NewRedisCursorStore(c redis.UniversalClient, prefix string) *RedisCursorStore {
	return &RedisCursorStore{c: c, prefix: prefix}
}

// Load implements CursorStore.
func (s *RedisCursorStore) Load(ctx context.Context, name string) (string, error) {
	v, err := s.c.Get(ctx, s.prefix+name).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("poll: redis cursor %s: %w", name, err)
	}
	return v, nil
}

// Save implements CursorStore.
func (s *RedisCursorStore) Save(ctx context.Context, name, cursor string) error {
	if err := s.c.Set(ctx, s.prefix+name, cursor, 0).Err(); err != nil {
		return fmt.Errorf("poll: redis cursor %s: %w", name, err)
	}
	return nil
}
