// Package mwtest holds helpers shared by the middleware tests.
package mwtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/adapters/memory"
	"github.com/msgkit/messaging/integration"
)

// Topic returns a unique topic name that is deleted from c's broker when the
// test ends (when the adapter can delete topics).
func Topic(t testing.TB, c messaging.Client, prefix string) string {
	t.Helper()
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.DeleteTopic(ctx, name); err != nil {
				t.Logf("delete topic %s: %v", name, err)
			}
		}
	})
	return name
}

// Context returns a context cancelled when the test ends or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Subscribe subscribes h and closes the subscription when the test ends.
func Subscribe(t testing.TB, ctx context.Context, c messaging.Consumer, topic string, h messaging.Handler, opts ...messaging.SubscribeOption) messaging.Subscription {
	t.Helper()
	sub, err := c.Subscribe(ctx, topic, h, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// Publish publishes msgs and fails the test on error.
func Publish(t testing.TB, ctx context.Context, p messaging.Publisher, topic string, msgs ...*messaging.Message) {
	t.Helper()
	if err := p.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// Memory returns a client of a fresh private memory broker, closed at the end.
func Memory(t testing.TB) *memory.Client {
	c, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Handled returns a middleware and a channel that it closes once the handler
// it wraps has returned for the first delivery with Attempt n: put it
// outside the layers whose effects the test reads, which are then done.
func Handled(n int) (messaging.Middleware, <-chan struct{}) {
	done := make(chan struct{})
	var once sync.Once
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, msg *messaging.Message) error {
			err := next(ctx, msg)
			if msg.Attempt == n {
				once.Do(func() { close(done) })
			}
			return err
		}
	}, done
}

// GiveUp subscribes to a new topic of a fresh memory broker, in group "g"
// with MaxAttempts(2), a handler that always fails wrapped with mw alone (no
// retry layer), publishes one message, and returns the topic once mw has
// returned for its second attempt, the last, which the adapter gives up.
func GiveUp(t testing.TB, mw messaging.Middleware) string {
	t.Helper()
	c := Memory(t)
	ctx := Context(t, 10*time.Second)
	topic := Topic(t, c, "giveup")
	signal, last := Handled(2)
	h := messaging.Chain(func(context.Context, *messaging.Message) error { return errors.New("mwtest: boom") }, signal, mw)
	Subscribe(t, ctx, c, topic, h, messaging.Group("g"), messaging.MaxAttempts(2))
	Publish(t, ctx, c, topic, &messaging.Message{Payload: []byte("x")})
	select {
	case <-last:
	case <-ctx.Done():
		t.Fatal("the second attempt was not delivered")
	}
	return topic
}

// Interrupt subscribes to a new topic of a fresh memory broker, in group
// "g" with MaxAttempts(1), a handler wrapped with mw that waits for its
// context and returns its error, publishes one message, stops the
// subscription (its context cancelled, then Close) while the handler waits,
// and fails the test unless a new subscription of the group gets the
// message again: the stopped subscription redelivers it, mw did not settle
// it as a last failure.
func Interrupt(t testing.TB, mw messaging.Middleware) {
	t.Helper()
	c := Memory(t)
	ctx := Context(t, 10*time.Second)
	topic := Topic(t, c, "interrupt")
	started := make(chan struct{})
	var once sync.Once
	h := messaging.Chain(func(ctx context.Context, _ *messaging.Message) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}, mw)
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := Subscribe(t, subCtx, c, topic, h, messaging.Group("g"), messaging.MaxAttempts(1))
	Publish(t, ctx, c, topic, &messaging.Message{ID: "interrupted", Payload: []byte("x")})
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the message was not delivered")
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	got := make(chan *messaging.Message, 1)
	Subscribe(t, ctx, c, topic, func(_ context.Context, m *messaging.Message) error {
		select {
		case got <- m:
		default:
		}
		return nil
	}, messaging.Group("g"), messaging.MaxAttempts(1))
	select {
	case m := <-got:
		if m.ID != "interrupted" {
			t.Fatalf("got %s, want the interrupted message", m.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message whose handler the subscription's stop interrupted at its last attempt never came back")
	}
}
