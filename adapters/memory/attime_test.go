package memory_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/messaging"
)

// TestAtTimeConcurrentPublishers: with many publishers at once, a Read at
// AtTime(m.Time) starts at m or before it, never after: the log's broker
// times are in offset order however the publishers interleave (each used
// to take its time before waiting for the topic's lock, so a later entry
// could carry an earlier time and AtTime's search could land past m).
func TestAtTimeConcurrentPublishers(t *testing.T) {
	c := mustNew(t)
	defer c.Close()
	ctx := context.Background()
	const topic, publishers, each = "attime-concurrent", 64, 300
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range each {
				if err := c.Publish(ctx, topic, messaging.NewMessage([]byte("x"))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	all := make(chan *messaging.Message, publishers*each)
	sub, err := c.Read(ctx, topic, messaging.Earliest, func(_ context.Context, m *messaging.Message) error {
		all <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*messaging.Message, 0, publishers*each)
	for len(msgs) < publishers*each {
		select {
		case m := <-all:
			msgs = append(msgs, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d of %d messages", len(msgs), publishers*each)
		}
	}
	sub.Close()

	first := func(p messaging.Position) int64 {
		ch := make(chan string, 1)
		sub, err := c.Read(ctx, topic, p, func(_ context.Context, m *messaging.Message) error {
			select {
			case ch <- m.Offset:
			default:
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		select {
		case off := <-ch:
			n, _ := strconv.ParseInt(off, 10, 64)
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("Read(%v) delivered nothing", p)
			return 0
		}
	}
	bad := 0
	for i := 0; i < len(msgs); i += 3 {
		m := msgs[i]
		off, _ := strconv.ParseInt(m.Offset, 10, 64)
		if got := first(messaging.AtTime(m.Time)); got > off {
			if bad++; bad <= 3 {
				t.Errorf("Read(AtTime(%v)) of the message at offset %d starts at offset %d: it skipped the message", m.Time.Format(time.RFC3339Nano), off, got)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%d of %d sampled messages skipped", bad, (len(msgs)+2)/3)
	}
}
