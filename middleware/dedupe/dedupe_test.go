package dedupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/dedupe"
)

// leases is a TokenStore that records the durations it is given.
type leases struct {
	*dedupe.MemoryStore
	claimed, completed time.Duration
}

func (s *leases) ClaimToken(ctx context.Context, key string, lease time.Duration) (dedupe.State, string, error) {
	s.claimed = lease
	return s.MemoryStore.ClaimToken(ctx, key, lease)
}

func (s *leases) Complete(ctx context.Context, key string, ttl time.Duration) error {
	s.completed = ttl
	return s.MemoryStore.Complete(ctx, key, ttl)
}

// TestRecordKeptForTTL: a handled message is recorded for WithTTL, and its
// claim taken for WithLease, not the other way round.
func TestRecordKeptForTTL(t *testing.T) {
	store := &leases{MemoryStore: dedupe.NewMemoryStore()}
	h := mwtest.Must(dedupe.New(store, dedupe.WithTTL(time.Hour), dedupe.WithLease(time.Minute)))(
		func(context.Context, *messaging.Message) error { return nil })
	if err := h(context.Background(), &messaging.Message{ID: "1", Topic: "t", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	if store.claimed != time.Minute || store.completed != time.Hour {
		t.Fatalf("claimed for %v and recorded for %v, want the lease 1m and the TTL 1h", store.claimed, store.completed)
	}
}
