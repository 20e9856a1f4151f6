// Package scenario holds the runnable scenarios behind `msgctl demo`
// (examples/ has a self-contained program for each): checkout (request/reply plus a background queue), order
// fan-out (event bus), a live dashboard (stream projection with checkpoint)
// and an external API sync (polling). Each runs against any messaging.Client,
// prints what happens, checks its own outcome and returns an error when the
// outcome is wrong.
package scenario

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/msgkit/messaging"
)

// Env is what a scenario runs with.
type Env struct {
	// Client is the broker connection; the scenario does not close it.
	Client messaging.Client
	// Out receives the narration (os.Stdout in the examples).
	Out io.Writer
	// Short makes the scenario small and quick (CI, demo).
	Short bool
	// Prefix starts every topic and group name the scenario creates; empty
	// means a random "demo-<hex>", so runs never see each other's data.
	Prefix string

	mu     sync.Mutex
	topics []string
}

// Topic returns the scenario topic called name and remembers it for Cleanup.
func (e *Env) Topic(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.prefix() + "." + name
	e.topics = append(e.topics, t)
	return t
}

// Group returns the consumer group name for name, prefixed like topics.
func (e *Env) Group(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.prefix() + "." + name
}

// prefix returns Prefix, choosing a random one first if empty. Callers hold mu.
func (e *Env) prefix() string {
	if e.Prefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		e.Prefix = "demo-" + hex.EncodeToString(b[:])
	}
	return e.Prefix
}

// Printf narrates one line, prefixed with the scenario's tag.
func (e *Env) Printf(tag, format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.Out, "[%s] %s\n", tag, fmt.Sprintf(format, args...))
}

// Cleanup deletes the topics the scenario created, when the client can.
func (e *Env) Cleanup() error {
	d, ok := e.Client.(messaging.TopicDeleter)
	e.mu.Lock()
	topics := e.topics
	e.topics = nil
	e.mu.Unlock()
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var first error
	for _, t := range topics {
		if err := d.DeleteTopic(ctx, t); err != nil && first == nil {
			first = fmt.Errorf("scenario: delete topic %s: %w", t, err)
		}
	}
	return first
}

// waitFor waits until cond is true, re-checking whenever changed fires, or
// until ctx is done.
func waitFor(ctx context.Context, changed <-chan struct{}, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
	return nil
}

// notifier is a counter set that signals every change.
type notifier struct {
	mu  sync.Mutex
	n   map[string]int
	sig chan struct{}
}

func newNotifier() *notifier { return &notifier{n: map[string]int{}, sig: make(chan struct{}, 1)} }

func (n *notifier) add(k string, d int) {
	n.mu.Lock()
	n.n[k] += d
	n.mu.Unlock()
	select {
	case n.sig <- struct{}{}:
	default:
	}
}

func (n *notifier) get(k string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.n[k]
}
