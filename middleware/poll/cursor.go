package poll

import (
	"context"
	"sync"
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
