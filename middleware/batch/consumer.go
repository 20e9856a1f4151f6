package batch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/middleware/internal/layer"
)

// Handler returns a messaging.Handler that gathers messages into batches for
// h; see the package documentation. It is safe for concurrent use (it must
// be, to gather anything).
func Handler(h BatchHandler, opts ...Option) messaging.Handler {
	if h == nil {
		panic("batch: nil BatchHandler")
	}
	a := &accumulator{cfg: newConfig(opts), h: h}
	return a.handle
}

// Subscribe subscribes h, in batches, to topic on c: it calls c.Subscribe
// with the SubscribeOptions given, then Concurrency(MaxMessages) and
// Prefetch(2*MaxMessages), so that batches can fill.
func Subscribe(ctx context.Context, c messaging.Consumer, topic string, h BatchHandler, opts ...Option) (messaging.Subscription, error) {
	cfg := newConfig(opts)
	sopts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...),
		messaging.Concurrency(cfg.maxMessages), messaging.Prefetch(2*cfg.maxMessages))
	sub, err := c.Subscribe(ctx, topic, Handler(h, opts...), sopts...)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return sub, nil
}

type accumulator struct {
	cfg config
	h   BatchHandler
	mu  sync.Mutex
	cur *group
}

// group is one batch being gathered or handled. Guarded by accumulator.mu
// until started; results is written before done is closed.
type group struct {
	ctx     context.Context
	msgs    []*messaging.Message // nil entries: withdrawn
	n       int                  // messages not withdrawn
	bytes   int
	started bool
	timer   *time.Timer
	results []error
	done    chan struct{}
}

func (a *accumulator) handle(ctx context.Context, msg *messaging.Message) error {
	if layer.IsProbe(ctx) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	g := a.cur
	if g == nil {
		g = &group{ctx: ctx, done: make(chan struct{})}
		a.cur = g
		wait := a.cfg.linger
		if a.cfg.window > 0 {
			now := time.Now()
			wait = now.Truncate(a.cfg.window).Add(a.cfg.window).Sub(now)
		}
		g.timer = time.AfterFunc(wait, func() { a.run(g) })
	}
	i := len(g.msgs)
	g.msgs = append(g.msgs, msg)
	g.n++
	g.bytes += msg.Size()
	full := g.n >= a.cfg.maxMessages || (a.cfg.maxBytes > 0 && g.bytes >= a.cfg.maxBytes)
	a.mu.Unlock()
	if full {
		a.run(g)
	}
	select {
	case <-g.done:
		return g.results[i]
	case <-ctx.Done():
	}
	a.mu.Lock()
	if !g.started {
		g.msgs[i] = nil // withdraw: the adapter redelivers it
		g.n--
		g.bytes -= msg.Size()
		a.mu.Unlock()
		return ctx.Err()
	}
	a.mu.Unlock()
	<-g.done // the batch handler has it and sees ctx too
	return g.results[i]
}

// run hands g to the batch handler once, from whichever of the timer and the
// filling handler comes first.
func (a *accumulator) run(g *group) {
	a.mu.Lock()
	if g.started {
		a.mu.Unlock()
		return
	}
	g.started = true
	if a.cur == g {
		a.cur = nil
	}
	g.timer.Stop()
	idx := make([]int, 0, len(g.msgs))
	msgs := make([]*messaging.Message, 0, len(g.msgs))
	for i, m := range g.msgs {
		if m != nil {
			idx = append(idx, i)
			msgs = append(msgs, m)
		}
	}
	a.mu.Unlock()

	g.results = make([]error, len(g.msgs))
	if len(msgs) > 0 {
		errs, err := a.call(g.ctx, msgs)
		for j, i := range idx {
			switch {
			case err != nil:
				g.results[i] = err
			case errs != nil:
				g.results[i] = errs[j]
			}
		}
	}
	close(g.done)
}

// call runs the batch handler; a panic or a result of the wrong length
// becomes an error for every message.
func (a *accumulator) call(ctx context.Context, msgs []*messaging.Message) (errs []error, err error) {
	h := func(ctx context.Context, _ *messaging.Message) error {
		errs = a.h(ctx, msgs)
		return nil
	}
	if err := layer.Call(ctx, h, msgs[0]); err != nil {
		return nil, fmt.Errorf("batch handler: %w", err)
	}
	if errs != nil && len(errs) != len(msgs) {
		return nil, fmt.Errorf("batch handler returned %d results for %d messages", len(errs), len(msgs))
	}
	return errs, nil
}
