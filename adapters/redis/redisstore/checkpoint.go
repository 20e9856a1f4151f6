package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/msgkit/messaging/patterns/checkpoint"
)

// CheckpointStore is a checkpoint.Store in Redis: one string key (prefix +
// name) each, holding the checkpoint as JSON, without expiry. A SET replaces
// the whole checkpoint at once, so Save is atomic.
type CheckpointStore struct{ keys }

// NewCheckpointStore returns a store using c with keys prefix + name. The
// caller owns c.
func NewCheckpointStore(c redis.UniversalClient, prefix string) *CheckpointStore {
	return &CheckpointStore{keys{c: c, prefix: prefix}}
}

// Load implements checkpoint.Store. A value that is not a JSON object (a
// cursor saved by the former CursorStore) is read as the Position.
func (s *CheckpointStore) Load(ctx context.Context, name string) (checkpoint.Checkpoint, bool, error) {
	v, err := s.c.Get(ctx, s.prefix+name).Result()
	if errors.Is(err, redis.Nil) {
		return checkpoint.Checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("redisstore: checkpoint %s: %w", name, err)
	}
	if !strings.HasPrefix(v, "{") {
		return checkpoint.Checkpoint{Position: v}, true, nil
	}
	var cp checkpoint.Checkpoint
	if err := json.Unmarshal([]byte(v), &cp); err != nil {
		return checkpoint.Checkpoint{}, false, fmt.Errorf("redisstore: checkpoint %s: %w", name, err)
	}
	return cp, true, nil
}

// Save implements checkpoint.Store.
func (s *CheckpointStore) Save(ctx context.Context, name string, cp checkpoint.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("redisstore: checkpoint %s: %w", name, err)
	}
	if err := s.c.Set(ctx, s.prefix+name, b, 0).Err(); err != nil {
		return fmt.Errorf("redisstore: checkpoint %s: %w", name, err)
	}
	return nil
}

var _ checkpoint.Store = (*CheckpointStore)(nil)
