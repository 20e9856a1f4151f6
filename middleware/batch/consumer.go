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
// be, to gather anything). A nil h is rejected with an error wrapping
// messaging.ErrInvalidOption; opts are applied in order and the first error
// is returned.
func Handler(h BatchHandler, opts ...Option) (messaging.Handler, error) {
	if h == nil {
		return nil, fmt.Errorf("batch: Handler: nil BatchHandler: %w", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig("Handler", false, opts)
	if err != nil {
		return nil, err
	}
	a := &accumulator{cfg: cfg, h: h}
	return a.handle, nil
}

// Subscribe subscribes h, in batches, to topic on c.
//
// When c is a messaging.BatchConsumer and no WithWindow is given, Subscribe
// uses the broker's batch fetch: it calls c.SubscribeBatch with BatchSize
// WithBatchSize, BatchWait WithBatchTimeout (at least a microsecond) and Concurrency 1
// (batches are handled one at a time), and splits a
// fetched batch further where WithMaxBatchBytes requires. Otherwise it gathers
// batches with Handler, calling c.Subscribe with Concurrency(WithBatchSize)
// and Prefetch(2*WithBatchSize) so that batches can fill. Either way the
// WithSubscribeOptions given come first, and each message is settled by its own
// result. To wrap per-message middleware (retry, deadletter, ...) around the
// batches, use Handler with c.Subscribe instead: a batch fetched natively
// reaches no per-message handler.
//
// A nil c or h is rejected with an error wrapping messaging.ErrInvalidOption;
// opts are applied in order and the first error is returned.
func Subscribe(ctx context.Context, c messaging.Consumer, topic string, h BatchHandler, opts ...Option) (messaging.Subscription, error) {
	if c == nil {
		return nil, fmt.Errorf("batch: Subscribe: nil Consumer: %w", messaging.ErrInvalidOption)
	}
	if h == nil {
		return nil, fmt.Errorf("batch: Subscribe: nil BatchHandler: %w", messaging.ErrInvalidOption)
	}
	cfg, err := newConfig("Subscribe", false, opts)
	if err != nil {
		return nil, err
	}
	var sub messaging.Subscription
	if bc, ok := c.(messaging.BatchConsumer); ok && cfg.window == 0 {
		sopts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...),
			messaging.BatchSize(cfg.maxMessages), messaging.BatchWait(max(cfg.linger, time.Microsecond)), messaging.Concurrency(1))
		sub, err = bc.SubscribeBatch(ctx, topic, messaging.BatchHandler(splitBytes(h, cfg.maxBytes)), sopts...)
	} else {
		sopts := append(append([]messaging.SubscribeOption(nil), cfg.subOpts...),
			messaging.Concurrency(cfg.maxMessages), messaging.Prefetch(2*cfg.maxMessages))
		a := &accumulator{cfg: cfg, h: h}
		sub, err = c.Subscribe(ctx, topic, a.handle, sopts...)
	}
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return sub, nil
}

// splitBytes calls h on consecutive parts of a batch whose Sizes add up to
// at most maxBytes each (a larger message forms a part of its own); 0 means
// no limit. A part's result of the wrong length fails that part.
func splitBytes(h BatchHandler, maxBytes int) BatchHandler {
	if maxBytes == 0 {
		return h
	}
	return func(ctx context.Context, msgs []*messaging.Message) []error {
		var errs []error
		for start := 0; start < len(msgs); {
			end, n := start, 0
			for end < len(msgs) && (end == start || n+msgs[end].Size() <= maxBytes) {
				n += msgs[end].Size()
				end++
			}
			if start == 0 && end == len(msgs) {
				return h(ctx, msgs)
			}
			part := h(ctx, msgs[start:end])
			if part != nil && len(part) != end-start {
				err := fmt.Errorf("batch: handler returned %d results for %d messages", len(part), end-start)
				part = make([]error, end-start)
				for i := range part {
					part[i] = err
				}
			}
			if part != nil {
				if errs == nil {
					errs = make([]error, len(msgs))
				}
				copy(errs[start:end], part)
			}
			start = end
		}
		return errs
	}
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
		return nil, fmt.Errorf("batch: handler: %w", err)
	}
	if errs != nil && len(errs) != len(msgs) {
		return nil, fmt.Errorf("batch: handler returned %d results for %d messages", len(errs), len(msgs))
	}
	return errs, nil
}
