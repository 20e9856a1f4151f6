// Package checkpoint stores where a reader or poller got to, so that it
// resumes there after a restart. It is the one cursor store of the library:
// stream projections, middleware/poll's Source and patterns/poll's Poller
// use it. Memory and Dir are here; a Redis store is
// redisstore.CheckpointStore (package
// github.com/msgkit/messaging/adapters/redis/redisstore).
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/msgkit/messaging"
)

// Checkpoint is a saved position plus the state built up to it. Saving both
// in one write keeps them consistent: after a restart the state is exactly
// the one that the position had produced.
type Checkpoint struct {
	// Position is the adapter's offset (messaging.Message.Offset) or the
	// external system's cursor.
	Position string `json:"position"`
	// ETag is the validator of the answer read at Position (an HTTP ETag),
	// sent back so that the source can answer "not modified"; empty when
	// the source has none.
	ETag string `json:"etag,omitempty"`
	// State is the encoded state (a projection's view), possibly empty.
	State []byte `json:"state,omitempty"`
}

// Store keeps checkpoints by name. Implementations must be safe for
// concurrent use and make Save atomic: a Load after a crash sees either the
// previous or the new checkpoint, never a mix.
type Store interface {
	// Load returns the checkpoint saved under name; ok is false when there
	// is none.
	Load(ctx context.Context, name string) (cp Checkpoint, ok bool, err error)
	// Save replaces the checkpoint saved under name.
	Save(ctx context.Context, name string, cp Checkpoint) error
}

// Memory is a Store in process memory (lost when the process exits). The
// zero value is ready to use.
type Memory struct {
	mu  sync.Mutex
	cps map[string]Checkpoint
}

// Load implements Store.
func (m *Memory) Load(ctx context.Context, name string) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.cps[name]
	cp.State = append([]byte(nil), cp.State...)
	return cp, ok, nil
}

// Save implements Store.
func (m *Memory) Save(ctx context.Context, name string, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[string]Checkpoint{}
	}
	cp.State = append([]byte(nil), cp.State...)
	m.cps[name] = cp
	return nil
}

// Dir is a Store keeping one JSON file per checkpoint in a directory. A name
// is a valid messaging name (messaging.ValidateName), or several joined by
// '/', each '/' a subdirectory: middleware/poll names its checkpoints
// "topic" or "topic/group", stored as <dir>/topic.json and
// <dir>/topic/group.json. Save writes a temporary file, syncs it and renames
// it over the old one, so a crash leaves the previous or the new checkpoint.
type Dir struct {
	path string
	mu   sync.Mutex
}

// NewDir returns a Store in directory path, creating it if needed.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &Dir{path: path}, nil
}

// file returns the path of name's file (see Dir).
func (d *Dir) file(name string) (string, error) {
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if err := messaging.ValidateName(p); err != nil {
			return "", fmt.Errorf("checkpoint: name %q: %w", name, err)
		}
	}
	return filepath.Join(d.path, filepath.Join(parts...)+".json"), nil
}

// Load implements Store.
func (d *Dir) Load(ctx context.Context, name string) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	f, err := d.file(name)
	if err != nil {
		return Checkpoint{}, false, err
	}
	b, err := os.ReadFile(f)
	if errors.Is(err, os.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: %s: %w", f, err)
	}
	return cp, true, nil
}

// Save implements Store.
func (d *Dir) Save(ctx context.Context, name string, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := d.file(name)
	if err != nil {
		return err
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, base := filepath.Split(f)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), f); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
