package stream

import (
	"context"
	"fmt"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/codec"
)

// Event is one decoded event of a tail.
type Event[T any] struct {
	Value T
	Msg   *messaging.Message
}

// Tail is a live view of a topic delivered over a bounded channel. When the
// reader of C falls behind, the channel fills and the tail stops reading
// from the broker until there is room (backpressure): events are never
// dropped, the log simply waits for the reader.
type Tail[T any] struct {
	c      chan Event[T]
	sub    messaging.Subscription
	cancel context.CancelFunc
	closed chan struct{} // closed once c is
}

// NewTail starts reading topic at from (messaging.Latest for "from now on")
// and delivers the decoded events on C, holding at most buffer of them
// (at least 1; a smaller buffer is rejected with an error wrapping
// messaging.ErrInvalidOption). The tail ends when ctx is done, Close is
// called, or an event does not decode; C is then closed and Err says why.
func NewTail[T any](ctx context.Context, c any, topic string, from messaging.Position, buffer int, cd codec.Codec) (*Tail[T], error) {
	if buffer < 1 {
		return nil, fmt.Errorf("stream: NewTail: buffer %d: must be at least 1: %w", buffer, messaging.ErrInvalidOption)
	}
	s, err := AsStream(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &Tail[T]{c: make(chan Event[T], buffer), cancel: cancel, closed: make(chan struct{})}
	h := func(ctx context.Context, v T, m *messaging.Message) error {
		select {
		case t.c <- Event[T]{Value: v, Msg: m}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sub, err := s.Read(ctx, topic, from, codec.Handler(cd, h))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("stream: tail %s from %v: %w", topic, from, err)
	}
	t.sub = sub
	go func() {
		<-sub.Done()
		cancel()
		close(t.c)
		close(t.closed)
	}()
	return t, nil
}

// C delivers the events in log order. It is closed when the tail ends.
func (t *Tail[T]) C() <-chan Event[T] { return t.c }

// Close stops the tail, even when the reader of C has stopped reading, and
// waits until it has ended: C is closed when it returns. Events still
// buffered stay readable on C. Close is idempotent.
func (t *Tail[T]) Close() error {
	t.cancel() // unblocks a handler waiting for room on C
	err := t.sub.Close()
	<-t.closed
	return err
}

// Err is nil while the tail runs and after a clean end, else what ended it.
func (t *Tail[T]) Err() error { return t.sub.Err() }
