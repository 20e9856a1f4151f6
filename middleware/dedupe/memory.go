package dedupe

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is a Store in process memory, for a single consumer process
// and for tests. Expired records are dropped as it goes. The zero value is
// not usable; call NewMemoryStore.
type MemoryStore struct {
	mu      sync.Mutex
	entries map[string]memEntry
	ops     int
	now     func() time.Time
}

type memEntry struct {
	done    bool
	expires time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{entries: map[string]memEntry{}, now: time.Now}
}

// Claim implements Store.
func (s *MemoryStore) Claim(_ context.Context, key string, lease time.Duration) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	if e, ok := s.entries[key]; ok && now.Before(e.expires) {
		if e.done {
			return StateDone, nil
		}
		return StateInProgress, nil
	}
	s.entries[key] = memEntry{expires: now.Add(lease)}
	return StateNew, nil
}

// Complete implements Store.
func (s *MemoryStore) Complete(_ context.Context, key string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[key] = memEntry{done: true, expires: s.now().Add(ttl)}
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && !e.done {
		delete(s.entries, key)
	}
	return nil
}

// Len returns the number of records, expired ones not yet dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// sweep drops expired records every 1024 operations. Callers hold mu.
func (s *MemoryStore) sweep(now time.Time) {
	s.ops++
	if s.ops%1024 != 0 {
		return
	}
	for k, e := range s.entries {
		if !now.Before(e.expires) {
			delete(s.entries, k)
		}
	}
}
