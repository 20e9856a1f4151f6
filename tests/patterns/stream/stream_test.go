package stream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/patterns/checkpoint"
	"github.com/msgkit/messaging/patterns/codec"
	"github.com/msgkit/messaging/patterns/stream"
)

type ev struct {
	N int `json:"n"`
}

// sum is a projection state: the events applied, in order.
type sum struct {
	Total int   `json:"total"`
	Seen  []int `json:"seen"`
}

func replayClient(t *testing.T, h integration.Harness) messaging.Client {
	c := h.Client(t)
	if !c.Capabilities().Replay {
		t.Skipf("%s has no replay", h.Name)
	}
	return c
}

func topic(t *testing.T, c messaging.Client, prefix string) string {
	name := integration.UniqueName(t, prefix)
	t.Cleanup(func() {
		if d, ok := c.(messaging.TopicDeleter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = d.DeleteTopic(ctx, name)
		}
	})
	return name
}

func publish(t *testing.T, c messaging.Client, tp string, from, to int) {
	for i := from; i < to; i++ {
		m, err := codec.Encode(nil, ev{N: i})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(t.Context(), tp, m); err != nil {
			t.Fatal(err)
		}
	}
}

// runUntil runs p until its state has n events, then stops it.
func runUntil(t *testing.T, c messaging.Client, p *stream.Projection[ev, sum], n int, timeout time.Duration) sum {
	t.Helper()
	ctx, stop := context.WithTimeout(t.Context(), timeout)
	defer stop()
	p.OnUpdate = func(s sum, _ *messaging.Message) {
		if len(s.Seen) >= n {
			stop()
		}
	}
	if err := p.Run(ctx, c); err != nil {
		t.Fatalf("run: %v", err)
	}
	s, _ := p.State()
	if len(s.Seen) != n {
		t.Fatalf("projection has %d events (%v), want %d", len(s.Seen), s.Seen, n)
	}
	return s
}

func newProjection(name, tp string, store checkpoint.Store) *stream.Projection[ev, sum] {
	return &stream.Projection[ev, sum]{
		Name: name, Topic: tp, Store: store,
		Apply: func(s sum, e ev, _ *messaging.Message) sum {
			return sum{Total: s.Total + e.N, Seen: append(append([]int(nil), s.Seen...), e.N)}
		},
	}
}

func TestProjectionResumesFromCheckpoint(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := replayClient(t, h)
		tp := topic(t, c, "proj")
		store, err := checkpoint.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		name := integration.UniqueName(t, "view")
		publish(t, c, tp, 0, 5)
		first := runUntil(t, c, newProjection(name, tp, store), 5, h.Timeout)
		if first.Total != 0+1+2+3+4 {
			t.Fatalf("total %d", first.Total)
		}
		publish(t, c, tp, 5, 8)
		// A new Projection value, as after a process restart: only the
		// store carries over.
		second := runUntil(t, c, newProjection(name, tp, store), 8, h.Timeout)
		if fmt.Sprint(second.Seen) != fmt.Sprint([]int{0, 1, 2, 3, 4, 5, 6, 7}) {
			t.Fatalf("events applied %v, want 0..7 each once in order", second.Seen)
		}
	})
}

func TestProjectionEveryN(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := replayClient(t, h)
		tp := topic(t, c, "proj-n")
		store := &checkpoint.Memory{}
		name := integration.UniqueName(t, "view")
		publish(t, c, tp, 0, 7)
		p := newProjection(name, tp, store)
		p.Every = 3
		runUntil(t, c, p, 7, h.Timeout)
		// Run saves on the way out even between saves.
		cp, ok, err := store.Load(t.Context(), name)
		if err != nil || !ok {
			t.Fatalf("checkpoint: %v %v", ok, err)
		}
		_, last := p.State()
		if cp.Position != last {
			t.Errorf("saved position %q, last applied %q", cp.Position, last)
		}
	})
}

func TestTailAppliesBackpressureAndKeepsOrder(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := replayClient(t, h)
		tp := topic(t, c, "tail")
		publish(t, c, tp, 0, 3) // before the tail: not seen from Latest
		tail, err := stream.NewTail[ev](t.Context(), c, tp, messaging.Latest, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tail.Close() })
		publish(t, c, tp, 3, 23)
		// Nobody reads yet: the tail holds at most its buffer and waits.
		for i := 3; i < 23; i++ {
			select {
			case e, ok := <-tail.C():
				if !ok {
					t.Fatalf("tail ended: %v", tail.Err())
				}
				if e.Value.N != i {
					t.Fatalf("got %d, want %d", e.Value.N, i)
				}
			case <-time.After(h.Timeout):
				t.Fatalf("event %d not delivered", i)
			}
		}
		// Close works while the tail is blocked on a full channel.
		publish(t, c, tp, 23, 30)
		done := make(chan error, 1)
		go func() { done <- tail.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(h.Timeout):
			t.Fatal("Close blocked with a full buffer")
		}
		// C is closed when Close returns: what was buffered, then the end,
		// without waiting.
		for open := true; open; {
			select {
			case _, open = <-tail.C():
			default:
				t.Fatal("C not closed when Close returned")
			}
		}
	})
}

func TestReplayFromOffset(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := replayClient(t, h)
		tp := topic(t, c, "replay")
		publish(t, c, tp, 0, 6)
		got := make(chan *messaging.Message, 10)
		sub, err := stream.Replay(t.Context(), c, tp, messaging.Earliest, func(_ context.Context, e ev, m *messaging.Message) error {
			got <- m
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var third string
		for i := range 6 {
			m := <-got
			if i == 2 {
				third = m.Offset
			}
		}
		_ = sub.Close()
		vals := make(chan int, 10)
		sub, err = stream.Replay(t.Context(), c, tp, messaging.AfterOffset(third), func(_ context.Context, e ev, _ *messaging.Message) error {
			vals <- e.N
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		for want := 3; want < 6; want++ {
			select {
			case n := <-vals:
				if n != want {
					t.Fatalf("after offset %s: got %d, want %d", third, n, want)
				}
			case <-time.After(h.Timeout):
				t.Fatalf("event %d not replayed", want)
			}
		}
	})
}

func TestUnsupported(t *testing.T) {
	if _, err := stream.AsStream(struct{}{}); !errors.Is(err, messaging.ErrUnsupported) {
		t.Errorf("err = %v, want ErrUnsupported", err)
	}
	p := &stream.Projection[ev, sum]{Name: "x", Topic: "t"}
	if err := p.Run(t.Context(), nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Errorf("nil Apply: %v, want ErrInvalidOption", err)
	}
}

// TestProjectionApplyPanics: a panic in Apply ends Run with an error
// wrapping ErrHandlerPanic (the read recovers it) instead of leaving Run and
// State blocked on the projection's lock; the checkpoint holds the events
// applied before it.
func TestProjectionApplyPanics(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, h integration.Harness) {
		c := replayClient(t, h)
		tp := topic(t, c, "proj-panic")
		store := &checkpoint.Memory{}
		name := integration.UniqueName(t, "view")
		publish(t, c, tp, 0, 3)
		p := newProjection(name, tp, store)
		apply := p.Apply
		p.Apply = func(s sum, e ev, m *messaging.Message) sum {
			if e.N == 1 {
				panic("bad event")
			}
			return apply(s, e, m)
		}
		ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx, c) }()
		select {
		case err := <-done:
			if !errors.Is(err, messaging.ErrHandlerPanic) {
				t.Fatalf("Run: %v, want an error wrapping ErrHandlerPanic", err)
			}
		case <-time.After(h.Timeout + 10*time.Second):
			t.Fatal("Run did not return after Apply panicked")
		}
		s, last := p.State()
		if fmt.Sprint(s.Seen) != "[0]" {
			t.Errorf("state %v, want the event before the panic, [0]", s.Seen)
		}
		if cp, ok, err := store.Load(t.Context(), name); err != nil || !ok || cp.Position != last {
			t.Errorf("checkpoint %+v (found %v, %v), want position %q", cp, ok, err, last)
		}
	})
}

// saves is a checkpoint store that counts its saves.
type saves struct {
	checkpoint.Memory
	mu sync.Mutex // Run saves from the reading goroutine and on its way out
	n  int
}

func (s *saves) Save(ctx context.Context, name string, cp checkpoint.Checkpoint) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return s.Memory.Save(ctx, name, cp)
}

func (s *saves) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestProjectionSavesEveryN: with Every n the checkpoint is saved after
// every nth event, before OnUpdate sees it, and not in between.
func TestProjectionSavesEveryN(t *testing.T) {
	c := mwtest.Memory(t)
	tp := topic(t, c, "proj-every")
	store := &saves{}
	publish(t, c, tp, 0, 7)
	p := newProjection(integration.UniqueName(t, "view"), tp, store)
	p.Every = 3
	ctx, stop := context.WithTimeout(t.Context(), 30*time.Second)
	defer stop()
	var wrong []string
	p.OnUpdate = func(s sum, _ *messaging.Message) {
		if got, want := store.count(), len(s.Seen)/3; got != want {
			wrong = append(wrong, fmt.Sprintf("%d saves after %d events, want %d", got, len(s.Seen), want))
		}
		if len(s.Seen) == 7 {
			stop()
		}
	}
	if err := p.Run(ctx, c); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, w := range wrong {
		t.Error(w)
	}
}
