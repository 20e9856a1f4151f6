// Package stream reads a topic's durable log (messaging.Stream): replay from
// a Position, projections (materialized views) that resume from a
// checkpoint, and a live tail with backpressure for dashboards.
//
// It needs an adapter whose Capabilities report Replay; with any other it
// fails with an error wrapping messaging.ErrUnsupported. Offsets are the
// adapter's; on partitioned brokers (Kafka) a single checkpoint offset only
// resumes correctly for single-partition topics.
package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/codec"
)

// AsStream returns c as a messaging.Stream, or an error wrapping
// messaging.ErrUnsupported when it cannot replay.
func AsStream(c any) (messaging.Stream, error) {
	s, ok := c.(messaging.Stream)
	if !ok {
		return nil, fmt.Errorf("stream: %T cannot replay a log: %w", c, messaging.ErrUnsupported)
	}
	if cl, ok := c.(messaging.Client); ok && !cl.Capabilities().Replay {
		return nil, fmt.Errorf("stream: %T does not support replay: %w", c, messaging.ErrUnsupported)
	}
	return s, nil
}

// Replay delivers the typed events of topic from position from on, in log
// order, to h, and keeps following the log until ctx is done or the
// subscription is closed. A handler error (or an event that does not
// decode) ends the replay; Subscription.Err reports it. c is typically a
// messaging.Client.
//
// A nil h is rejected with an error wrapping messaging.ErrInvalidOption.
func Replay[T any](ctx context.Context, c any, topic string, from messaging.Position, h codec.Func[T], cd codec.Codec) (messaging.Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("stream: Replay: nil handler: %w", messaging.ErrInvalidOption)
	}
	s, err := AsStream(c)
	if err != nil {
		return nil, err
	}
	sub, err := s.Read(ctx, topic, from, codec.Handler(cd, h))
	if err != nil {
		return nil, fmt.Errorf("stream: replay %s from %v: %w", topic, from, err)
	}
	return sub, nil
}

// saveTimeout bounds the final checkpoint save after the context is done.
const saveTimeout = 10 * time.Second

// Projection folds the events of a topic into a state of type S (a
// materialized view), checkpointing state and offset together so that a
// restarted projection resumes exactly where the saved state ends: no event
// is applied twice and none is skipped.
//
// Apply must be deterministic, and should return a new state rather than
// change the one it is given: State and OnUpdate hand the current state out,
// and maps or slices in it would otherwise change under their readers.
// Fields must be set before Run; one Projection runs one Run at a time.
type Projection[T, S any] struct {
	// Name identifies the checkpoint (a valid topic-style name).
	Name string
	// Topic is the topic read.
	Topic string
	// Initial is the state before the first event.
	Initial S
	// Apply returns the state after event e (carried in message m).
	Apply func(state S, e T, m *messaging.Message) S
	// Store keeps the checkpoint; nil means in memory only (a fresh
	// checkpoint.Memory), which resumes across Run calls of this Projection
	// but not across processes.
	Store checkpoint.Store
	// Every saves the checkpoint after this many events (0 means the
	// default, 1; negative is invalid). A
	// larger value saves less often; a restart then re-reads the events
	// after the last save, which is still consistent since the state saved
	// with that offset is reloaded.
	Every int
	// Codec encodes events (default JSON) and States the saved state
	// (default JSON).
	Codec, StateCodec codec.Codec
	// OnUpdate, when set, is called after each applied event with the new
	// state, from the reading goroutine: a slow OnUpdate slows the
	// projection (backpressure), never drops events.
	OnUpdate func(state S, m *messaging.Message)

	mu    sync.Mutex
	state S
	last  string
}

// State returns the current state and the offset of the last event applied
// (empty before any). It is safe to call while Run runs.
func (p *Projection[T, S]) State() (S, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.last
}

// Run loads the checkpoint (or starts from Initial at Earliest), then applies
// every event from there on and follows the log until ctx is done. It
// returns nil when ctx is done, or the first error (a decode or checkpoint
// failure, or the read failing). The checkpoint is saved before Run returns.
func (p *Projection[T, S]) Run(ctx context.Context, c any) error {
	if p.Apply == nil {
		return fmt.Errorf("stream: projection %q: nil Apply: %w", p.Name, messaging.ErrInvalidOption)
	}
	if err := messaging.ValidateName(p.Name); err != nil {
		return fmt.Errorf("stream: projection name: %w: %w", err, messaging.ErrInvalidOption)
	}
	if p.Every < 0 {
		return fmt.Errorf("stream: projection %q: Every %d: must not be negative: %w", p.Name, p.Every, messaging.ErrInvalidOption)
	}
	s, err := AsStream(c)
	if err != nil {
		return err
	}
	if p.Store == nil {
		p.Store = &checkpoint.Memory{}
	}
	stateCodec := p.StateCodec
	if stateCodec == nil {
		stateCodec = codec.JSON
	}
	every := p.Every
	if every == 0 {
		every = 1
	}

	state, from := p.Initial, messaging.Earliest
	cp, ok, err := p.Store.Load(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("stream: projection %s: load checkpoint: %w", p.Name, err)
	}
	if ok && cp.Position != "" {
		var st S
		if err := stateCodec.Unmarshal(cp.State, &st); err != nil {
			return fmt.Errorf("stream: projection %s: decode saved state: %w", p.Name, err)
		}
		state, from = st, messaging.AfterOffset(cp.Position)
	}
	p.mu.Lock()
	p.state, p.last = state, cp.Position
	p.mu.Unlock()

	save := func(ctx context.Context) error {
		p.mu.Lock()
		st, last := p.state, p.last
		p.mu.Unlock()
		if last == "" {
			return nil
		}
		b, err := stateCodec.Marshal(st)
		if err != nil {
			return fmt.Errorf("stream: projection %s: encode state: %w", p.Name, err)
		}
		if err := p.Store.Save(ctx, p.Name, checkpoint.Checkpoint{Position: last, State: b}); err != nil {
			return fmt.Errorf("stream: projection %s: save checkpoint: %w", p.Name, err)
		}
		return nil
	}
	unsaved := 0
	apply := func(e T, m *messaging.Message) S {
		p.mu.Lock()
		defer p.mu.Unlock() // Apply may panic: the read ends, Run saves
		p.state = p.Apply(p.state, e, m)
		p.last = m.Offset
		return p.state
	}
	h := func(ctx context.Context, e T, m *messaging.Message) error {
		st := apply(e, m)
		if unsaved++; unsaved >= every {
			if err := save(ctx); err != nil {
				return err
			}
			unsaved = 0
		}
		if p.OnUpdate != nil {
			p.OnUpdate(st, m)
		}
		return nil
	}
	sub, err := s.Read(ctx, p.Topic, from, codec.Handler(p.Codec, h))
	if err != nil {
		return fmt.Errorf("stream: projection %s: read %s from %v: %w", p.Name, p.Topic, from, err)
	}
	<-sub.Done()
	runErr := sub.Err()
	// Save what was applied since the last save, even though ctx is done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if err := save(sctx); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}
