package reqreply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/msgkit/messaging"
)

// newID returns a random 128-bit identifier in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Result is the completion of a fire-and-forget publish started with Go.
type Result struct {
	done chan struct{}
	err  error
	ids  []string
}

// Go publishes msgs to topic in the background and returns at once; the
// Result reports when the broker has accepted them (or why not). The caller
// must not touch msgs until Done is closed. ctx bounds the publish.
func Go(ctx context.Context, pub messaging.Publisher, topic string, msgs ...*messaging.Message) *Result {
	r := &Result{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := pub.Publish(ctx, topic, msgs...); err != nil {
			r.err = fmt.Errorf("reqreply: async publish to %s: %w", topic, err)
			return
		}
		for _, m := range msgs {
			r.ids = append(r.ids, m.ID)
		}
	}()
	return r
}

// Done is closed when the publish has finished, successfully or not.
func (r *Result) Done() <-chan struct{} { return r.done }

// Err returns nil before Done is closed and after a successful publish, and
// the publish error otherwise (a *messaging.PublishError says which
// messages failed).
func (r *Result) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Wait blocks until the publish has finished or ctx is done, and returns the
// IDs of the accepted messages (empty for a message published without one
// where the adapter assigns none, see
// messaging.Capabilities.PublishAssignsID), or the error.
func (r *Result) Wait(ctx context.Context) ([]string, error) {
	select {
	case <-r.done:
		return r.ids, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
