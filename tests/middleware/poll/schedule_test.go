package poll_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
	"github.com/msgkit/messaging/integration"
	"github.com/msgkit/messaging/internal/mwtest"
	"github.com/msgkit/messaging/middleware/poll"
)

type batches struct {
	mu    sync.Mutex
	sizes []int
	col   *integration.Collector
}

func (b *batches) handle(_ context.Context, msgs []*messaging.Message) []error {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(msgs))
	b.mu.Unlock()
	for _, m := range msgs {
		b.col.Add(m)
	}
	return nil
}

func (b *batches) get() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

func publishN(t *testing.T, ctx context.Context, c messaging.Publisher, topic string, n int) []string {
	var ids []string
	for range n {
		m := integration.WithIDs(c, &messaging.Message{Payload: []byte("x")})[0]
		mwtest.Publish(t, ctx, c, topic, m)
		ids = append(ids, m.ID)
	}
	return ids
}

func TestDrainRealTime(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, time.Minute)
	topic := mwtest.Topic(t, c, "rt")
	b := &batches{col: integration.NewCollector()}
	ids := publishN(t, ctx, c, topic, 5)
	sub, err := poll.Drain(ctx, c, topic, b.handle, poll.Schedule{Mode: poll.RealTime}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b.col.WaitDistinct(t, 5, 10*time.Second)
	b.col.Report(t, ids)
	for _, n := range b.get() {
		if n != 1 {
			t.Fatalf("real-time batches %v, want all of one", b.get())
		}
	}
}

func TestDrainWindowedByTime(t *testing.T) {
	c := mwtest.Memory(t)
	ctx := mwtest.Context(t, time.Minute)
	topic := mwtest.Topic(t, c, "win")
	b := &batches{col: integration.NewCollector()}
	ids := publishN(t, ctx, c, topic, 5)
	const every = 400 * time.Millisecond
	start := time.Now()
	sub, err := poll.Drain(ctx, c, topic, b.handle, poll.Schedule{Mode: poll.Windowed, Every: every, MaxWaiting: 100}, messaging.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b.col.WaitDistinct(t, 5, 10*time.Second)
	b.col.Report(t, ids)
	if s := b.get(); len(s) > 2 {
		t.Fatalf("batches %v: the waiting messages were not drained together", s)
	}
	// Time is the subject: the waiting messages are drained at the end of
	// the first (or, if it was about to end, the second) window.
	if el := time.Since(start); el > 2*every+time.Second {
		t.Errorf("drained after %v, windows are %v", el, every)
	}
}

func TestDrainRejectsBadSchedule(t *testing.T) {
	c := mwtest.Memory(t)
	b := &batches{col: integration.NewCollector()}
	for _, s := range []poll.Schedule{{Mode: poll.Windowed}, {Mode: "sometimes"}} {
		if _, err := poll.Drain(context.Background(), c, "t", b.handle, s); !errors.Is(err, messaging.ErrInvalidOption) {
			t.Errorf("schedule %+v: %v, want ErrInvalidOption", s, err)
		}
	}
}

// TestDrainWhenWaitingEndToEnd drains in batches of MaxWaiting on every
// registered backend, with a window too long to ever end in the test.
func TestDrainWhenWaitingEndToEnd(t *testing.T) {
	integration.ForEachBackend(t, func(t *testing.T, hn integration.Harness) {
		c := hn.Client(t)
		ctx := mwtest.Context(t, 2*time.Minute)
		topic := mwtest.Topic(t, c, "drain")
		b := &batches{col: integration.NewCollector()}
		sub, err := poll.Drain(ctx, c, topic, b.handle, poll.Schedule{Mode: poll.Windowed, Every: time.Hour, MaxWaiting: 3},
			messaging.Group(integration.UniqueName(t, "g")))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ids := publishN(t, ctx, c, topic, 6)
		b.col.WaitDistinct(t, 6, hn.Timeout)
		b.col.Report(t, ids)
		if s := b.get(); len(s) != 2 || s[0] != 3 || s[1] != 3 {
			t.Fatalf("batches %v, want [3 3]", s)
		}
	})
}
