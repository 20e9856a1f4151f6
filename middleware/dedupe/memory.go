package dedupe

import (
	"context"
	"strconv"
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
	claims  uint64 // claims made, numbering them for their tokens
	now     func() time.Time
}

type memEntry struct {
	done    bool
	claim   uint64 // the number of the claim (not done)
	expires time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{entries: map[string]memEntry{}, now: time.Now}
}

// Claim implements Store.
func (s *MemoryStore) Claim(ctx context.Context, key string, lease time.Duration) (State, error) {
	st, _, err := s.ClaimToken(ctx, key, lease)
	return st, err
}

// ClaimToken implements TokenStore.
func (s *MemoryStore) ClaimToken(_ context.Context, key string, lease time.Duration) (State, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	if e, ok := s.entries[key]; ok && now.Before(e.expires) {
		if e.done {
			return StateDone, "", nil
		}
		return StateInProgress, "", nil
	}
	s.claims++
	s.entries[key] = memEntry{claim: s.claims, expires: now.Add(lease)}
	return StateNew, strconv.FormatUint(s.claims, 36), nil
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

// ReleaseToken implements TokenStore.
func (s *MemoryStore) ReleaseToken(_ context.Context, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && !e.done && strconv.FormatUint(e.claim, 36) == token {
		delete(s.entries, key)
	}
	return nil
}

var _ TokenStore = (*MemoryStore)(nil)

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
